"""`serve(settings)`: the gateway on uvicorn, with logs that print no paths and no query strings.

uvicorn's own access log is off (its lines carry the query string, where a stream ticket may
be); `gateway.middleware` logs method, route template, status and duration instead. Tracebacks
are reduced to the exception's type name. SIGINT and SIGTERM stop uvicorn gracefully: it stops
accepting, sse-starlette ends open streams, the lifespan closes the runtimes.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Any

import uvicorn

from gateway.app import create_app
from shared.settings import Settings

GRACEFUL_SHUTDOWN_S = 10

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


class SafeFormatter(logging.Formatter):
    """A line per record: no traceback (source paths, frame values), only the exception type."""

    def formatException(self, ei: _ExcInfo) -> str:
        return f"({ei[0].__name__})" if ei[0] is not None else ""

    def formatStack(self, stack_info: str) -> str:
        return ""


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


async def serve_async(settings: Settings) -> None:
    await uvicorn.Server(config(settings)).serve()


def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM; raises `gateway.auth.UnsafeConfig` before binding if unsafe."""
    asyncio.run(serve_async(settings))
