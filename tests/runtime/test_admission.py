"""`Admission` of creates: from the cached members' view while its room budget lasts, afresh
only when the view says there is no room, and never more creates than the view has places for,
however often it is read while the heartbeats lag."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from runtime_worker.admission import REFRESHER, Admission
from runtime_worker.store.base import Store
from shared.errors import CapacityExhausted, RuntimeUnavailable
from shared.models import MemberInfo
from shared.settings import Settings
from tests.helpers import wait_until


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Registry:
    """The members as a store answers them: heartbeats that only change when a test says so."""

    def __init__(self, clock: Clock, *members: MemberInfo) -> None:
        self.clock = clock
        self.members_now = list(members)
        self.reads = 0

    async def members(self) -> list[MemberInfo]:
        self.reads += 1
        return list(self.members_now)


def member(member_id: str, capacity: int, hosted: int, age_ms: int = 0) -> MemberInfo:
    return MemberInfo(
        member_id=member_id,
        capacity=capacity,
        hosted=hosted,
        alive=True,
        heartbeat_age_ms=age_ms,
    )


def admission(registry: Registry, clock: Clock) -> Admission:
    settings = Settings(heartbeat_ms=1000, capacity_wait_s=0, redis_url=None)
    return Admission(cast(Store, registry), settings, clock=clock)


async def test_creates_are_admitted_from_the_cached_view() -> None:
    clock = Clock()
    registry = Registry(clock, member("a", 1000, 0), member("b", 1000, 10))
    admit = admission(registry, clock)
    for _ in range(100):
        await admit.admit_worker()
        clock.now += 0.001  # 100 creates within 0.1 s: the view stays fresh
    assert registry.reads == 1


async def test_a_burst_takes_no_more_places_than_the_view_shows() -> None:
    clock = Clock()
    registry = Registry(clock, member("a", 3, 0), member("b", 2, 0))
    admit = admission(registry, clock)
    for _ in range(5):
        await admit.admit_worker()
    # The heartbeats still say 0 hosted: reading them again gives no new places.
    with pytest.raises(CapacityExhausted):
        await admit.admit_worker()
    assert registry.reads >= 2  # the refusal was judged on a fresh read


async def test_places_come_back_once_a_heartbeat_counts_the_admitted() -> None:
    clock = Clock()
    registry = Registry(clock, member("a", 2, 0))
    admit = admission(registry, clock)
    await admit.admit_worker()
    await admit.admit_worker()
    clock.now += 1.0
    # A heartbeat after both creates: one is hosted, one Worker was stopped meanwhile.
    registry.members_now = [member("a", 2, 1, age_ms=100)]
    await admit.admit_worker()
    with pytest.raises(CapacityExhausted):
        await admit.admit_worker()


async def test_creates_after_a_heartbeat_still_count_against_it() -> None:
    clock = Clock()
    registry = Registry(clock, member("a", 2, 0))
    admit = admission(registry, clock)
    await admit.admit_worker()
    clock.now += 1.0
    # The member's heartbeat is older than that create: its hosted count cannot include it.
    registry.members_now = [member("a", 2, 0, age_ms=1500)]
    await admit.admit_worker()
    with pytest.raises(CapacityExhausted):
        await admit.admit_worker()


async def test_draining_and_dead_members_offer_no_places() -> None:
    clock = Clock()
    dead = MemberInfo(member_id="d", capacity=10, hosted=0, alive=False)
    draining = MemberInfo(member_id="r", capacity=10, hosted=0, alive=True, draining=True)
    registry = Registry(clock, dead, draining)
    with pytest.raises(CapacityExhausted):
        await admission(registry, clock).admit_worker()


class Unreliable(Registry):
    """Answers `failures` reads with Redis away first, and records who read."""

    def __init__(self, clock: Clock, failures: int, *members: MemberInfo) -> None:
        super().__init__(clock, *members)
        self.failures = failures
        self.readers: list[str] = []

    async def members(self) -> list[MemberInfo]:
        task = asyncio.current_task()
        self.readers.append(task.get_name() if task else "")
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeUnavailable("fleet runtime fleet is unavailable (TimeoutError)")
        return await super().members()


async def test_a_started_admission_keeps_its_view_fresh_so_requests_never_read() -> None:
    registry = Unreliable(Clock(), 2, member("a", 1000, 0))
    settings = Settings(heartbeat_ms=1000, capacity_wait_s=0, redis_url=None)  # every 0.25 s
    admit = Admission(cast(Store, registry), settings)  # the real clock: the task sleeps
    admit.start()
    try:
        # Two failed reads (Redis away) do not stop it: it reads again on its own.
        async def refreshed() -> bool:
            return registry.reads >= 3

        await wait_until(refreshed, timeout_s=5, what="background reads")
        for _ in range(20):
            await admit.admit_worker()
            await admit.admit_input("w")
            await asyncio.sleep(0.005)  # settle-ok: requests spread over several refreshes
        assert set(registry.readers) == {REFRESHER}
    finally:
        await admit.aclose()
    reads = registry.reads
    await asyncio.sleep(0.3)  # settle-ok: more than a refresh interval, and none came
    assert registry.reads == reads
