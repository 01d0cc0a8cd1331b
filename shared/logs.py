"""One logging setup for every entry point (`yoi gateway`, `yoi runtime`, `yoi up`, `python -m`).

Lines go to stderr as text or, with `YOI_LOG_FORMAT=json`, as one JSON object per line. Two
guards keep secrets out: `redact_url` for code that logs a URL on purpose, and `RedactingFilter`
on the handler as the safety net for lines we do not write ourselves (httpx logs every request
URL at INFO, query and all): it rewrites every URL in a message and drops known secret values.
Tracebacks are reduced to the exception's type name (they carry source paths and frame values).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

if TYPE_CHECKING:
    from shared.settings import Settings

LogFormat = Literal["text", "json"]
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED: Final = "***"
# A secret shorter than this is not replaced inside other text: it would mangle ordinary words.
MIN_SECRET_CHARS: Final = 4
# Path segments shown as they are: a Redis db number or an API version; anything else may be a
# key (some providers and proxies put one in the path), so it is shown as `…`.
_SAFE_PATH = re.compile(r"^/(?:\d{1,2}|v\d{1,2})?$")
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,15}://[^\s\"'<>]+")
# Loggers whose lines would carry user text or every frame sent: never below these levels.
_FLOORS: Final = {"arq": logging.WARNING, "sse_starlette": logging.INFO}
_HANDLER_NAME: Final = "yoi"


def redact_url(url: str) -> str:
    """`scheme://host:port` plus a path only when it is plainly not a secret; no userinfo, no
    query, no fragment. What to log wherever a URL (Redis, provider) is worth a log line."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:  # an unparsable port or bracket: say nothing of it
        return f"<{REDACTED}>"
    if not parts.scheme or host is None:
        return f"<{REDACTED}>"
    shown = f"[{host}]" if ":" in host else host
    origin = f"{parts.scheme}://{shown}" + (f":{port}" if port is not None else "")
    path = parts.path if _SAFE_PATH.match(parts.path or "/") else "/…"
    tail = "?…" if parts.query or parts.fragment else ""
    return origin + path + tail


def url_secrets(url: str | None) -> list[str]:
    """The parts of a URL that `redact_url` hides, as literal secrets for `RedactingFilter`."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found = [parts.password or "", parts.username or "", parts.fragment]
    found += [value for _, value in parse_qsl(parts.query, keep_blank_values=True)]
    if not _SAFE_PATH.match(parts.path or "/"):
        found += [unquote(segment) for segment in parts.path.split("/")]
    return [secret for secret in found if len(secret) >= MIN_SECRET_CHARS]


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every URL redacted and every known secret value replaced."""
    clean = _URL.sub(lambda match: redact_url(match.group(0)), text)
    for secret in secrets:
        clean = clean.replace(secret, REDACTED)
    return clean


class RedactingFilter(logging.Filter):
    """The safety net on the handler: whatever logger a record comes from, its message leaves
    with URLs redacted and known secrets replaced (the record is rewritten once, as text)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is replaced whole.
        unique = {s for s in secrets if len(s) >= MIN_SECRET_CHARS}
        self.secrets = sorted(unique, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a caller's bad format string: keep the template only
            message = str(record.msg)
        record.msg, record.args = redact_text(message, self.secrets), None
        return True


def _bare(record: logging.LogRecord) -> tuple[logging.LogRecord, str | None]:
    """A copy without traceback or stack, and the exception's type name if there was one."""
    exc_type = record.exc_info[0] if record.exc_info else None
    bare = logging.makeLogRecord(record.__dict__)
    bare.exc_info = bare.exc_text = bare.stack_info = None
    return bare, (exc_type.__name__ if exc_type is not None else None)


class SafeFormatter(logging.Formatter):
    """One text line per record: a traceback becomes the exception's type name; works on a copy,
    so a traceback another handler cached is never printed."""

    def format(self, record: logging.LogRecord) -> str:
        bare, exc_name = _bare(record)
        line = super().format(bare)
        return f"{line} ({exc_name})" if exc_name is not None else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `ts` (ISO 8601, UTC), `level`, `logger`, `message`, and
    `exc_type` when the record carried an exception (never its traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        bare, exc_name = _bare(record)
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(bare.created, UTC).isoformat(timespec="milliseconds"),
            "level": bare.levelname,
            "logger": bare.name,
            "message": bare.getMessage(),
        }
        if exc_name is not None:
            entry["exc_type"] = exc_name
        return json.dumps(entry, ensure_ascii=False)


def formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else SafeFormatter(TEXT_FORMAT)


def setup_logging(
    level: str = "INFO", log_format: LogFormat = "text", secrets: Iterable[str] = ()
) -> logging.Handler:
    """Route every logger through one stderr handler on the root; idempotent (a second call
    replaces the handler it installed). Returns the handler, e.g. for tests."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(RedactingFilter(secrets))
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name, floor in _FLOORS.items():
        logging.getLogger(name).setLevel(max(floor, root.level))
    # Loggers that brought their own handlers (uvicorn's, when run without our log_config) go
    # through ours instead, so no line escapes the filter.
    for logger in logging.Logger.manager.loggerDict.values():
        if isinstance(logger, logging.Logger) and logger.handlers and not logger.propagate:
            logger.handlers.clear()
            logger.propagate = True
    return handler


def setup_logging_from(settings: Settings) -> logging.Handler:
    """`setup_logging` with the settings' level, format and every secret they hold."""
    return setup_logging(settings.log_level, settings.log_format, settings.secret_values())


def uvicorn_log_config(level: str = "INFO") -> dict[str, Any]:
    """uvicorn's `log_config`: its loggers propagate to the root handler `setup_logging`
    installed; its access log stays silent (its lines carry the query string, where a stream
    ticket may be); `gateway.middleware` logs method, route template, status and duration."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            "uvicorn": {"handlers": [], "level": level.upper(), "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level.upper(), "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
