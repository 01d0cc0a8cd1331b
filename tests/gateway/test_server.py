"""`python -m gateway` flags, the fail-closed start, and log lines without tracebacks."""

from __future__ import annotations

import logging
import sys

import pytest

from gateway.__main__ import main
from gateway.server import config
from shared.logs import SafeFormatter, uvicorn_log_config
from shared.settings import Settings
from tests.gateway.support import settings_for


def test_python_m_gateway_takes_the_yoi_gateway_flags(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One command definition: `--fleet` repeats and splits on commas, as for `yoi gateway`."""
    seen: list[Settings] = []
    monkeypatch.setattr("gateway.server.serve", seen.append)
    monkeypatch.setattr("gateway.cli.servers.setup_logging_from", lambda settings: None)
    with pytest.raises(SystemExit) as stop:
        main(["--host", "127.0.0.1", "--port", "9000", "--fleet", "a,b", "--fleet", "c"])
    assert stop.value.code == 0
    assert (seen[0].host, seen[0].port, seen[0].fleets) == ("127.0.0.1", 9000, ["a", "b", "c"])


def test_refuses_to_serve_beyond_loopback_without_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("YOI_API_TOKEN", raising=False)
    monkeypatch.setattr("gateway.cli.servers.setup_logging_from", lambda settings: None)
    with pytest.raises(SystemExit) as stop:
        main(["--host", "0.0.0.0", "--port", "1"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "YOI_API_TOKEN" in err and "Traceback" not in err


def test_bad_flags_are_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--fleet", "Not A Slug"])
    assert stop.value.code == 2
    assert "invalid fleet runtime id" in capsys.readouterr().err


def test_log_lines_carry_no_traceback() -> None:
    formatter = SafeFormatter("%(levelname)s %(message)s")
    try:
        raise ValueError("inside /some/secret/path")
    except ValueError:
        record = logging.LogRecord(
            "yoi", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
        )
    record.exc_text = "Traceback: /some/secret/path cached by another handler"
    line = formatter.format(record)
    assert line == "ERROR failed (ValueError)"
    assert "secret" not in line


def test_uvicorn_config_has_no_access_log_and_our_formatter(namespace: str) -> None:
    settings = settings_for(namespace, port=8123)
    uvicorn_config = config(settings)
    assert uvicorn_config.access_log is False
    assert (uvicorn_config.host, uvicorn_config.port) == ("127.0.0.1", 8123)
    # uvicorn's loggers go through the one root handler; its access log (query strings) is mute
    loggers = uvicorn_log_config()["loggers"]
    assert loggers["uvicorn"]["propagate"] and not loggers["uvicorn"]["handlers"]
    assert loggers["uvicorn.access"] == {"handlers": [], "level": "WARNING", "propagate": False}
