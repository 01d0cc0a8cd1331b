"""Admission to a fleet runtime: work nobody can run is refused, not accepted.

A new Worker needs a member with room (alive, not draining, hosting fewer than its capacity); an
input needs its Worker's host alive, or a member with room to take the Worker. When neither is
there the caller waits up to `Settings.capacity_wait_s` (members restarting come back within
it), then gets 503 `capacity_exhausted` with `Retry-After`, and nothing was written.

The members' view is cached for half the heartbeat interval, so the hot input path pays no Redis
round trip when the fleet has room (a member that left within that time may still count); when
the cache says there is none, the Worker's record and the members are read afresh.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence

from runtime_worker.store.base import Store
from shared.errors import CapacityExhausted
from shared.models import MemberInfo
from shared.settings import Settings
from shared.timeutil import monotonic_s

POLL_S = 0.1  # how often a waiting caller looks at the members again


def has_room(members: Sequence[MemberInfo]) -> bool:
    return any(m.alive and not m.draining and m.hosted < m.capacity for m in members)


def alive_ids(members: Sequence[MemberInfo]) -> set[str]:
    return {m.member_id for m in members if m.alive}


class Admission:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        clock: Callable[[], float] = monotonic_s,
    ) -> None:
        self._store = store
        self._wait_s = settings.capacity_wait_s
        self._fresh_s = settings.heartbeat_ms / 2000
        self._retry_after_s = max(1, math.ceil(settings.lease_ttl_ms / 1000))
        self._clock = clock
        self._members: list[MemberInfo] = []
        self._read_at = -math.inf

    async def _view(self, *, fresh: bool = False) -> list[MemberInfo]:
        if fresh or self._clock() - self._read_at > self._fresh_s:
            self._members = await self._store.members()
            self._read_at = self._clock()
        return self._members

    async def admit_worker(self) -> None:
        """Return when a member has room for a new Worker; else `CapacityExhausted`. Creating
        is rare and costs round trips anyway: it reads the members afresh, never the cache."""
        await self._wait(has_room, "no runtime process has room")

    async def admit_input(self, worker_id: str) -> None:
        """Return when the Worker's host is alive or a member has room to take it."""
        if has_room(await self._view()):
            return
        host = (await self._store.get_worker(worker_id)).host

        def runnable(members: Sequence[MemberInfo]) -> bool:
            return has_room(members) or (host is not None and host in alive_ids(members))

        await self._wait(runnable, "no runtime process can run this worker")

    async def _wait(self, ready: Callable[[Sequence[MemberInfo]], bool], why: str) -> None:
        """Until `ready` holds for the members as read afresh, up to the bounded wait."""
        deadline = self._clock() + self._wait_s
        while not ready(await self._view(fresh=True)):
            if self._clock() >= deadline:
                retry_after_s = self._retry_after_s
                raise CapacityExhausted(f"{why}: try again later", retry_after_s=retry_after_s)
            await asyncio.sleep(POLL_S)
