"""The embedded runtime's scheduler: one task, owned by its `Runtime` (started and cancelled with
it), that fires what is due and then sleeps until the earliest next firing.

It sleeps at most `schedule_tick_s` and at least `MIN_WAIT_S`, and wakes at once when a schedule
is added (`Schedules.changed`), so an `at` two seconds ahead fires on its second. Time is the
schedules' `clock`: a test sets it, then `Schedules.poke()`s the loop, and sees the slots of its
choosing fire without waiting for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from runtime_worker.schedules import Schedules
from shared.aio import cancel_and_wait
from shared.errors import RuntimeUnavailable
from shared.settings import Settings

log = logging.getLogger("yoi.schedules")

MIN_WAIT_S = 0.05


class ScheduleLoop:
    def __init__(self, schedules: Schedules, settings: Settings) -> None:
        self.schedules = schedules
        self.tick_s = float(settings.schedule_tick_s)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="yoi-schedules")

    async def stop(self) -> None:
        """Cancel the loop and wait for it; idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        await cancel_and_wait(task)

    async def _run(self) -> None:
        changed = self.schedules.changed
        while True:
            changed.clear()
            wait = self.tick_s
            try:
                await self.schedules.fire_due(self.schedules.clock())
                wait = await self.schedules.seconds_to_next(self.tick_s)
            except RuntimeUnavailable:  # the store cannot write: try again at the next tick
                log.warning("schedules not fired: the store is unavailable")
            except Exception:  # never let one bad pass end the loop
                log.exception("schedules pass failed")
            # `asyncio.timeout`, not `wait_for`: a cancel arriving as the event is set must
            # still cancel (3.11's `wait_for` may return instead, and the loop would go on).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(MIN_WAIT_S, wait)):
                    await changed.wait()


__all__ = ["ScheduleLoop"]
