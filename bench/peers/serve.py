"""Run a peer ASGI app under uvicorn with the settings the gateway uses: one process, default
loop and HTTP implementation, no access log, loopback only."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import uvicorn
from starlette.types import ASGIApp


def serve(factory: Callable[[str], ASGIApp]) -> None:
    """Parse `--port` and `--redis-url`, build the app, serve until SIGTERM."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    uvicorn.run(
        factory(args.redis_url),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )
