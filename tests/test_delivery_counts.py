"""What counts toward dead-lettering, on the Redis store (fake and real): only a crash of the
input's own run. Also the fleet clock heartbeats are judged on, and hand-backs that never take
a running Worker. Real processes show the same in tests/fleet/test_fault_counts.py."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import pytest

from runtime_worker.store.base import RunAlone, TakenRun
from runtime_worker.store.redis import RedisStore
from shared.errors import LeaseLost
from shared.ids import new_id
from shared.models import Strategy
from shared.settings import Settings
from shared.timeutil import now_s
from tests.test_redis_store import Backend, _backend, _hosted

pytestmark = pytest.mark.redis
TTL_MS = 60_000


@pytest.fixture(params=["redis", "fakeredis"])
async def backend(
    request: pytest.FixtureRequest, redis_url: str, namespace: str
) -> AsyncIterator[Backend]:
    async with _backend(request.param, redis_url, namespace) as made:
        yield made


def _store(backend: Backend) -> RedisStore:
    # Heartbeats every 50 ms: a silent member is judged within about a second.
    return backend.store(Settings(heartbeat_ms=50, lease_ttl_ms=1000, max_deliveries=2))


async def _take(
    store: RedisStore, wid: str, member: str, epoch: int, *, solo: bool = False
) -> TakenRun:
    taken = await store.take_run(wid, member, epoch, new_id(), now_s(), 0, solo=solo)
    assert taken is not None
    return taken


async def _takeover(store: RedisStore, wid: str, member: str) -> int:
    """The previous holder's lease lapses; `member` acquires."""
    await store.client.delete(store.keys.lease(wid))
    epoch = await store.acquire(wid, member, TTL_MS)
    assert epoch is not None
    return epoch


async def test_a_retake_from_a_live_host_counts_nothing(backend: Backend) -> None:
    """A host that lost its lease (Redis away, a lapse) but still heartbeats did not crash."""
    store = _store(backend)
    record, epoch = await _hosted(store, "m1")
    wid = record.worker_id
    await store.heartbeat("m1", 10, 1)
    await store.submit_input(wid, "long answer", new_id(), Strategy.REJECT, now_s())
    first = await _take(store, wid, "m1", epoch)
    epoch2 = await _takeover(store, wid, "m2")
    await store.heartbeat("m1", 10, 0)  # m1 is alive
    again = await _take(store, wid, "m2", epoch2)  # no RunAlone: not a suspect
    assert again.item.seq == first.item.seq
    assert (again.claim.attempt, again.claim.crashes, again.claim.host_lost) == (2, 0, False)


async def test_a_second_lost_host_makes_a_suspect_and_only_solo_crashes_count(
    backend: Backend,
) -> None:
    store = _store(backend)
    record, epoch = await _hosted(store, "m1")
    wid = record.worker_id
    await store.submit_input(wid, "/crash", new_id(), Strategy.REJECT, now_s())
    await _take(store, wid, "m1", epoch)
    # m1 never heartbeats (it died with other turns, perhaps): nothing counts, and the input
    # runs again beside other turns, so every survivor takes its share of m1's Workers at once.
    epoch = await _takeover(store, wid, "m2")
    shared = await _take(store, wid, "m2", epoch)
    assert (shared.claim.attempt, shared.claim.crashes, shared.claim.host_lost) == (2, 0, True)
    # m2 dies while running it beside others too: a second loss makes it a suspect.
    epoch = await _takeover(store, wid, "m3")
    with pytest.raises(RunAlone):
        await _take(store, wid, "m3", epoch)
    solo = await _take(store, wid, "m3", epoch, solo=True)
    assert (solo.claim.attempt, solo.claim.crashes, solo.claim.host_lost) == (3, 0, True)
    # m3 dies while running it alone: that crash is the input's own.
    epoch = await _takeover(store, wid, "m4")
    with pytest.raises(RunAlone):  # still a suspect: alone again
        await _take(store, wid, "m4", epoch)
    counted = await _take(store, wid, "m4", epoch, solo=True)
    assert (counted.claim.attempt, counted.claim.crashes) == (4, 1)
    epoch = await _takeover(store, wid, "m5")
    # At max_deliveries crashes it is taken without waiting for solitude: to dead-letter it.
    last = await _take(store, wid, "m5", epoch)
    assert (last.claim.attempt, last.claim.crashes) == (5, 2)


async def test_a_graceful_hand_back_counts_nothing(backend: Backend) -> None:
    store = _store(backend)
    record, epoch = await _hosted(store, "m1")
    wid = record.worker_id
    await store.submit_input(wid, "answer", new_id(), Strategy.REJECT, now_s())
    await _take(store, wid, "m1", epoch)
    assert await store.release_many({wid: epoch}, "m1") == {wid}  # m1 stops and is gone
    epoch2 = await store.acquire(wid, "m2", TTL_MS)
    assert epoch2 is not None
    again = await _take(store, wid, "m2", epoch2)
    assert (again.claim.attempt, again.claim.crashes) == (2, 0)


async def test_the_same_member_taking_its_own_input_again_counts_nothing(
    backend: Backend,
) -> None:
    """After a Redis outage a member gives its leases up and takes them again itself."""
    store = _store(backend)
    record, epoch = await _hosted(store, "m1")
    wid = record.worker_id
    await store.submit_input(wid, "answer", new_id(), Strategy.REJECT, now_s())
    await _take(store, wid, "m1", epoch)
    epoch2 = await _takeover(store, wid, "m1")
    again = await _take(store, wid, "m1", epoch2)
    assert (again.claim.attempt, again.claim.crashes) == (2, 0)


async def test_a_take_under_an_expired_lease_is_refused(backend: Backend) -> None:
    store = _store(backend)
    record, epoch = await _hosted(store, "m1")
    wid = record.worker_id
    await store.submit_input(wid, "hi", new_id(), Strategy.ENQUEUE, now_s())
    await store.client.delete(store.keys.lease(wid))  # expired; nobody took it since
    with pytest.raises(LeaseLost):
        await store.take_run(wid, "m1", epoch, new_id(), now_s(), 0)
    assert (await store.get_worker(wid)).state.value == "idle"  # nothing started


async def test_a_hand_back_takes_only_idle_workers(backend: Backend) -> None:
    store = _store(backend)
    busy, busy_epoch = await _hosted(store, "m1")
    idle, idle_epoch = await _hosted(store, "m1")
    await store.submit_input(busy.worker_id, "hi", new_id(), Strategy.REJECT, now_s())
    await _take(store, busy.worker_id, "m1", busy_epoch)
    leases = {busy.worker_id: busy_epoch, idle.worker_id: idle_epoch}
    assert await store.release_many(leases, "m1", idle_only=True) == {idle.worker_id}
    assert await store.client.exists(store.keys.lease(busy.worker_id)) == 1
    assert await store.client.exists(store.keys.lease(idle.worker_id)) == 0


async def test_heartbeat_ages_stand_still_while_the_fleet_is_away(backend: Backend) -> None:
    """Ages come from Redis's clock; a gap in which no member reached Redis counts as at most
    two heartbeats, so after an outage nobody looks dead."""
    store = _store(backend)
    await store.heartbeat("m1", 10, 0)
    clock = store.keys.member_clock()
    real_ms = int(await store.client.hget(clock, "real_ms"))  # type: ignore[misc]
    # As if Redis had been away for a minute since m1's heartbeat.
    await store.client.hset(clock, "real_ms", str(real_ms - 60_000))  # type: ignore[misc]
    (view,) = await store.member_views()
    assert view.silent_ms <= 2 * 50 + 50
    assert view.info.alive


async def test_heartbeat_ages_use_redis_time_not_the_members(backend: Backend) -> None:
    store = _store(backend)
    await store.heartbeat("m1", 10, 0)
    entry = await store.client.hget(store.keys.members(), "m1")  # type: ignore[misc]
    assert entry is not None
    (server_s, _) = await store.client.time()
    seen_ms = int(json.loads(entry)["seen_ms"])
    assert abs(seen_ms - server_s * 1000) < 5_000
    # m2 beats on (its beats move the fleet clock); m1 is silent from here.
    started = time.monotonic()
    while time.monotonic() - started < 5:
        await store.heartbeat("m2", 10, 0)
        views = {v.info.member_id: v for v in await store.member_views()}
        if views["m1"].silent_ms > 1000:
            break
    assert not views["m1"].info.alive  # silent past alive_ms (the lease TTL), on Redis's clock
    assert views["m2"].info.alive
    members = store._members  # the judge a retake asks
    assert await members.lost(members.host_tag("m1"))
    assert not await members.lost(members.host_tag("m2"))


async def test_a_member_restarted_under_the_same_id_is_another_host(backend: Backend) -> None:
    """A fixed YOI_MEMBER_ID (a pod's name) survives a crash: the new process is judged by its
    incarnation, so the old one counts as lost."""
    before, after = _store(backend), _store(backend)  # two processes, one member id
    record, epoch = await _hosted(before, "m1")
    wid = record.worker_id
    await before.heartbeat("m1", 10, 1)
    await before.submit_input(wid, "/crash", new_id(), Strategy.REJECT, now_s())
    await _take(before, wid, "m1", epoch)
    await after.heartbeat("m1", 10, 0)  # the restarted process beats under the same id
    epoch = await _takeover(after, wid, "m1")
    again = await _take(after, wid, "m1", epoch)
    assert (again.claim.attempt, again.claim.host_lost) == (2, True)  # judged lost
