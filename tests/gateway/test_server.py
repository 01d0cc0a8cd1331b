"""`python -m gateway` flags, the fail-closed start, and log lines without tracebacks."""

from __future__ import annotations

import logging
import sys

import pytest

from gateway.__main__ import main, parse_args
from gateway.server import SafeFormatter, config, log_config
from tests.gateway.support import settings_for


def test_flags_map_to_settings() -> None:
    assert parse_args([]) == {}
    overrides = parse_args(
        [
            "--host",
            "0.0.0.0",
            "--port",
            "9000",
            "--redis-url",
            "redis://r:6379/0",
            "--fleet",
            "a,b",
            "--fleet",
            "c",
        ]
    )
    assert overrides == {
        "host": "0.0.0.0",
        "port": 9000,
        "redis_url": "redis://r:6379/0",
        "fleets": "a,b,c",
    }


def test_refuses_to_serve_beyond_loopback_without_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("YOI_API_TOKEN", raising=False)
    assert main(["--host", "0.0.0.0", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "YOI_API_TOKEN" in err and "Traceback" not in err


def test_bad_flags_are_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--fleet", "Not A Slug"]) == 2
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
    assert log_config()["formatters"]["line"]["()"] is SafeFormatter
