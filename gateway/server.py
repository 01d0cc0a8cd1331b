"""`serve(settings)`: the gateway on uvicorn, its logs through `shared.logs` (no paths, no secrets).

uvicorn's loggers propagate to the one handler `shared.logs` installs; its access log is off
(its lines carry the query string, where a stream ticket may be); `gateway.middleware` logs
method, route template, status and duration instead. The command that calls `serve` sets the
logging up (`shared.logs.setup_logging_from`). SIGINT and SIGTERM stop uvicorn gracefully: it
stops accepting, sse-starlette ends open streams, the lifespan closes the runtimes.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

import uvicorn

from gateway.app import create_app
from gateway.protocol import CoalescingHttpToolsProtocol
from shared import aio
from shared.logs import uvicorn_log_config
from shared.settings import Settings

GRACEFUL_SHUTDOWN_S = 10
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def config(settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        app=create_app(settings),
        http=CoalescingHttpToolsProtocol,  # a sized answer's head and body in one write
        host=settings.host,
        port=settings.port,
        log_config=uvicorn_log_config(settings.log_level),
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
