"""`TurnGate`: a host's turns run side by side, but a solo turn runs alone.

A solo turn is the attempt of a suspect input: two of its hosts were lost while running it
with other turns, and any of them may have killed them (after one loss it runs beside others
again, so a member's death is recovered by all survivors at once). Run alone, a crash is its
own, and only such a crash counts toward dead-lettering (`store.base.RunAlone`). A solo turn
waits until no other turn is in flight, and no turn starts while it waits or runs. Suspects
are rare (they follow two crashes), so the common path is a counter and no await.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable


class TurnGate:
    def __init__(self) -> None:
        self._running = 0  # shared turns in flight
        self._solo_waiting = 0
        self._solo_running = False
        self._changed = asyncio.Event()

    @property
    def in_flight(self) -> int:
        return self._running + int(self._solo_running)

    @contextlib.asynccontextmanager
    async def turn(self, *, solo: bool = False) -> AsyncIterator[None]:
        """Hold the gate for one turn (take to finish); `solo`: alone."""
        if solo:
            self._solo_waiting += 1
            try:
                await self._until(lambda: self._running == 0 and not self._solo_running)
            finally:
                self._solo_waiting -= 1
                self._notify()  # a cancelled solo wait holds nobody up
            self._solo_running = True
        else:
            await self._until(lambda: not self._solo_waiting and not self._solo_running)
            self._running += 1
        try:
            yield
        finally:
            if solo:
                self._solo_running = False
            else:
                self._running -= 1
            self._notify()

    async def _until(self, ready: Callable[[], bool]) -> None:
        while not ready():
            await self._changed.wait()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
