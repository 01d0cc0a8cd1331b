"""Test helpers: wait on a condition with a deadline instead of sleeping; a free port (the
bench's, so one copy serves both)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from bench.procs import free_port

__all__ = ["free_port", "wait_until", "wait_until_sync"]


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
