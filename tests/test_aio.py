"""The server processes' `aio.run` (the cycle collector is tuned before the loop starts) and
`cancel_and_wait`."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from shared.aio import cancel_and_wait

PROBE = """
import asyncio, gc
from shared import aio

async def main():
    return gc.get_threshold()[0], gc.get_freeze_count(), type(asyncio.get_running_loop()).__module__

print(*aio.run(main()))
"""


def test_run_freezes_startup_objects_and_raises_the_youngest_threshold() -> None:
    # its own interpreter: freezing the test process's heap would change every later test
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    threshold, frozen, loop_module = int(out[0]), int(out[1]), out[2]
    assert threshold == 10_000
    assert frozen > 1_000  # the imports' objects left every collection's walk
    assert loop_module.startswith("uvloop")


async def test_cancel_and_wait_ends_every_task_and_consumes_their_outcomes() -> None:
    ended: list[str] = []

    async def sleeper() -> None:
        try:
            await asyncio.sleep(60)  # settle-ok: a task that only ends when cancelled
        finally:
            ended.append("sleeper")

    async def fails_on_cancel() -> None:
        try:
            await asyncio.sleep(60)  # settle-ok: a task that only ends when cancelled
        except asyncio.CancelledError:
            ended.append("failer")
            raise RuntimeError("while ending") from None

    finished = asyncio.ensure_future(asyncio.sleep(0))  # settle-ok: a task done at once
    await finished
    tasks = [asyncio.create_task(sleeper()), asyncio.create_task(fails_on_cancel()), finished]
    await asyncio.sleep(0)  # settle-ok: one loop turn, so both tasks are running
    await asyncio.wait_for(cancel_and_wait(*tasks), 5)
    assert sorted(ended) == ["failer", "sleeper"] and all(t.done() for t in tasks)


async def test_cancel_and_wait_waits_out_the_callers_cancellation_then_raises_it() -> None:
    stubborn_started = asyncio.Event()
    release = asyncio.Event()

    async def stubborn() -> None:  # ends only when released, whatever it is told
        stubborn_started.set()
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue

    child = asyncio.create_task(stubborn())
    await stubborn_started.wait()
    owner = asyncio.create_task(cancel_and_wait(child))
    await asyncio.sleep(0)  # settle-ok: one loop turn, so the owner is waiting
    owner.cancel()
    await asyncio.sleep(0)  # settle-ok: one loop turn, so the owner has seen its cancel
    await asyncio.sleep(0)  # settle-ok: and a second, in which it would have ended
    assert not owner.done()  # the child has not ended: the owner does not leave it behind
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(owner, 5)
    assert child.done()
