"""Test helpers: wait on a condition with a deadline instead of sleeping."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_sync(
    condition: Callable[[], bool], *, timeout_s: float = 10.0, what: str = "condition"
) -> None:
    """Poll `condition` until true; fail loudly with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(delay)  # settle-ok: bounded poll of a condition, not a settle
        delay = min(delay * 2, 0.1)


async def wait_until(
    condition: Callable[[], Awaitable[bool]], *, timeout_s: float = 10.0, what: str = "condition"
) -> None:
    """Async twin of `wait_until_sync`."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(delay)  # settle-ok: bounded poll of a condition, not a settle
        delay = min(delay * 2, 0.1)
