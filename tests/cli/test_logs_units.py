"""`shared.logs`: URL redaction, the filter on the handler, the JSON line format, one handler."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from shared.logs import (
    JsonFormatter,
    RedactingFilter,
    redact_url,
    setup_logging,
    url_secrets,
)
from shared.settings import Settings


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:s3cr3t@127.0.0.1:6380/0", "redis://127.0.0.1:6380/0"),
        ("redis://:s3cr3t@redis", "redis://redis"),
        ("http://127.0.0.1:9000/v1?key=tok123", "http://127.0.0.1:9000/v1?…"),
        ("https://proxy.example/tok123/v1", "https://proxy.example/…"),
        ("http://[::1]:8000/v1", "http://[::1]:8000/v1"),
        ("http://host:notaport/", "<***>"),
        ("not a url", "<***>"),
    ],
)
def test_redact_url_keeps_only_what_is_plainly_not_secret(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_the_filter_redacts_urls_and_known_secrets_in_any_record() -> None:
    secrets = [*url_secrets("http://127.0.0.1:1/tok123/v1?key=tok456"), "sk-planted"]
    record = logging.LogRecord(
        "httpx",
        logging.INFO,
        __file__,
        1,
        "HTTP Request: POST %s %r",
        ("http://127.0.0.1:1/tok123/v1/chat/completions?key=tok456", {"auth": "sk-planted"}),
        None,
    )
    assert RedactingFilter(secrets).filter(record)
    message = record.getMessage()
    for planted in ("tok123", "tok456", "sk-planted"):
        assert planted not in message
    assert message.startswith("HTTP Request: POST http://127.0.0.1:1/…")


def test_settings_name_every_secret_they_hold() -> None:
    settings = Settings(
        redis_url="redis://user:s3cr3t@127.0.0.1:1/0",
        scheduler_redis_url="redis://:arq-s3cr3t@127.0.0.1:3/0",
        openai_base_url="http://127.0.0.1:2/v1?key=tok123",
        openai_api_key="sk-planted",
        api_token="api-planted",
    )
    planted = {"s3cr3t", "arq-s3cr3t", "tok123", "sk-planted", "api-planted"}
    assert set(settings.secret_values()) >= planted


def test_json_lines_carry_the_exception_type_never_the_traceback() -> None:
    try:
        raise ValueError("inside /some/secret/path")
    except ValueError:
        record = logging.LogRecord(
            "yoi", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
        )
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert (entry["level"], entry["logger"], entry["message"]) == ("ERROR", "yoi", "failed")
    assert entry["exc_type"] == "ValueError" and "secret" not in line and "\n" not in line


def test_setup_is_one_handler_however_often_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    before = list(root.handlers), root.level
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    try:
        setup_logging("INFO", "json")
        handler = setup_logging("DEBUG", "json", ["sk-planted"])
        assert [h for h in root.handlers if h.get_name() == "yoi"] == [handler]
        logging.getLogger("yoi.test").debug("key %s at %s", "sk-planted", "redis://u:pw12@h:1/0")
        logging.getLogger("arq.worker").info("job text of a user")  # arq stays at WARNING
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert [entry["message"] for entry in lines] == ["key *** at redis://h:1/0"]
    finally:
        for extra in [h for h in root.handlers if h not in before[0]]:
            root.removeHandler(extra)
        root.setLevel(before[1])
