"""Admission to a fleet runtime: work nobody can run is refused, not accepted.

A new Worker needs a member with room (alive, not draining, hosting fewer than its capacity); an
input needs its Worker's host alive, or a member with room to take the Worker. When neither is
there the caller waits up to `Settings.capacity_wait_s` (members restarting come back within
it), then gets 503 `capacity_exhausted` with `Retry-After`, and nothing was written.

Both paths admit from the members' view, at most half a heartbeat interval old (a member that
left within that time may still count), which a background task (`start`) reads again every
quarter interval: no request waits for a members read while the fleet has room (an input after
a pause did, 0.36 ms of its first token). Only when the view says there is no room is it read
afresh on the request path; without the task (or while it is behind) a stale view is too.

Creates spend a room budget: the free places the view shows (capacity minus hosted, over the
members that take Workers) minus the creates this gateway admitted since the oldest of those
members' heartbeats, which its hosted counts cannot include yet. A burst therefore never takes
more places than the view has, however often the view is read while heartbeats lag. What can
still overshoot capacity is bounded by what no heartbeat shows: Workers created before that
heartbeat and not hosted yet when it was sent (placement's backlog, milliseconds in a healthy
fleet), and other gateways' creates since it. Reading the members afresh on every create, as
before, had the same bound (the hosted counts come from heartbeats either way).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable, Sequence

from runtime_worker.store.base import Store
from shared.aio import cancel_and_wait
from shared.errors import CapacityExhausted, RuntimeUnavailable
from shared.models import MemberInfo
from shared.settings import Settings
from shared.timeutil import monotonic_s

POLL_S = 0.1  # how often a waiting caller looks at the members again
REFRESHER = "yoi-admission-refresh"

log = logging.getLogger("yoi.admission")


def takes_workers(member: MemberInfo) -> bool:
    return member.alive and not member.draining


def has_room(members: Sequence[MemberInfo]) -> bool:
    return any(takes_workers(m) and m.hosted < m.capacity for m in members)


def free_places(members: Sequence[MemberInfo]) -> int:
    """Places for new Workers the members' last heartbeats show."""
    return sum(max(0, m.capacity - m.hosted) for m in members if takes_workers(m))


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
        self._counted_at = -math.inf  # the view's oldest heartbeat, on this process's clock
        self._admitted: deque[float] = deque()  # when each create was admitted, oldest first
        self._refresher: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Keep the view fresh in the background (owned here until `aclose`)."""
        if self._refresher is None:
            self._refresher = asyncio.create_task(self._refresh(), name=REFRESHER)

    async def aclose(self) -> None:
        task, self._refresher = self._refresher, None
        if task is not None:
            await cancel_and_wait(task)

    async def _refresh(self) -> None:
        while True:
            try:
                await self._view(fresh=True)
            except RuntimeUnavailable:
                log.debug("members not read: the store is unavailable")  # requests say 503
            except Exception:  # a bug must not stop the refreshes: requests read inline then
                log.exception("members not read")
            await asyncio.sleep(self._fresh_s / 2)

    async def _view(self, *, fresh: bool = False) -> list[MemberInfo]:
        if fresh or self._clock() - self._read_at > self._fresh_s:
            asked_at = self._clock()
            members = await self._store.members()
            self._members, self._read_at = members, self._clock()
            # Heartbeat ages are judged in Redis; counting from before the read only counts
            # more of our own creates against the budget, never fewer.
            ages = [m.heartbeat_age_ms or 0 for m in members if takes_workers(m)]
            self._counted_at = asked_at - max(ages, default=0) / 1000
            while self._admitted and self._admitted[0] < self._counted_at:
                self._admitted.popleft()
        return self._members

    def _budget(self, members: Sequence[MemberInfo], count: int = 1) -> bool:
        """Whether the view (just read by `_view`, which dropped the creates its heartbeats
        count) leaves places for `count` more creates."""
        return free_places(members) - len(self._admitted) >= count

    async def admit_worker(self, count: int = 1) -> None:
        """Return when the members have room for `count` new Workers (a batch is admitted
        whole or not at all); else `CapacityExhausted`. From the cached view while the budget
        lasts; afresh when it says no room."""

        def room(members: Sequence[MemberInfo]) -> bool:
            return self._budget(members, count)

        if not room(await self._view()):
            await self._wait(room, "no runtime process has room")
        now = self._clock()
        self._admitted.extend(now for _ in range(count))

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
