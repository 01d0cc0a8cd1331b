"""`serve(settings)`: the gateway on uvicorn, with logs that print no paths and no query strings.

uvicorn's own access log is off (its lines carry the query string, where a stream ticket may
be); `gateway.middleware` logs method, route template, status and duration instead. Tracebacks
are reduced to the exception's type name. SIGINT and SIGTERM stop uvicorn gracefully: it stops
accepting, sse-starlette ends open streams, the lifespan closes the runtimes.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn

from gateway.app import create_app
from shared import aio
from shared.settings import Settings

GRACEFUL_SHUTDOWN_S = 10
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SafeFormatter(logging.Formatter):
    """One line per record: a traceback (source paths, frame values) becomes the exception's
    type name; works on a copy, so a traceback another handler cached is never printed."""

    def format(self, record: logging.LogRecord) -> str:
        exc_type = record.exc_info[0] if record.exc_info else None
        bare = logging.makeLogRecord(record.__dict__)
        bare.exc_info = bare.exc_text = bare.stack_info = None
        line = super().format(bare)
        return f"{line} ({exc_type.__name__})" if exc_type is not None else line


def log_config(level: str = "INFO") -> dict[str, Any]:
    handler = {"class": "logging.StreamHandler", "formatter": "line", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "line": {
                "()": SafeFormatter,
                "fmt": "%(asctime)s %(levelname)s %(name)s: %(message)s",
            }
        },
        "handlers": {"stderr": handler},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "yoi": {"handlers": ["stderr"], "level": level, "propagate": False},
            # Its debug lines print every frame sent; the gateway's own log says enough.
            "sse_starlette": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        },
    }


def config(settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        app=create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=log_config(),
        access_log=False,
        server_header=False,
        proxy_headers=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )


class _Server(uvicorn.Server):
    """uvicorn's server, except that a signal that stopped it gracefully is not raised again
    afterwards: SIGTERM/SIGINT end in a clean exit (status 0), not a kill or a traceback."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach the main thread only; an embedding program handles them
            return
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)


async def serve_async(settings: Settings) -> None:
    await _Server(config(settings)).serve()


def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM; raises `gateway.auth.UnsafeConfig` before binding if unsafe."""
    aio.run(serve_async(settings))
