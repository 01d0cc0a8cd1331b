"""`run(main)`: `asyncio.run` on uvloop when it is installed (a faster event loop for the
gateway's and the runtime processes' socket-bound work), on asyncio's own loop otherwise, with
the cycle collector tuned for a long-running server; `cancel_and_wait` for an owner stopping
its tasks."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# Container allocations (net of frees) between two youngest-generation collections; Python's
# default is 700.
GC_GEN0_THRESHOLD = 10_000


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None (asyncio's default) when uvloop is not installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; kept optional to embed
        return None
    return uvloop.new_event_loop


def tune_gc() -> None:
    """A request allocates and frees many short-lived objects, so at the default threshold the
    cycle collector ran hundreds of times a second under load, and its older passes walked
    every object the imports made (measured: about a sixth of the gateway's CPU per answer).
    Freeze what exists at start (modules, never garbage) out of every pass and collect the
    youngest generation less often; the older generations keep their default ratios."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gc.get_threshold()[0], GC_GEN0_THRESHOLD), gen1, gen2)


async def cancel_and_wait(*tasks: asyncio.Future[Any]) -> None:
    """Cancel `tasks` and wait until each has ended, their outcomes consumed (a task's own
    cancellation, or an error it raised while ending), so none outlives its owner. A
    cancellation of the caller meanwhile does not cut the wait short; it is raised once every
    task has ended (`suppress(CancelledError)` around `await task` would swallow it, and the
    caller would go on as if it had not been cancelled)."""
    for task in tasks:
        task.cancel()
    cancelled = False
    while not all(task.done() for task in tasks):
        try:
            await asyncio.wait([task for task in tasks if not task.done()])
        except asyncio.CancelledError:
            cancelled = True
    for task in tasks:
        if not task.cancelled():
            task.exception()
    if cancelled:
        raise asyncio.CancelledError


def run(main: Coroutine[Any, Any, T]) -> T:
    tune_gc()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
