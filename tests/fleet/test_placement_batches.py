"""A member's acquisitions in batches side by side, on real Redis: its share stays exact, no
Worker is hosted by two members, a batch that fails (or is cut short) leaves its Workers to the
sweep, and the registry hears of a grown hosted count before the next heartbeat."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from runtime_worker import _member_placement
from runtime_worker.member import Member
from runtime_worker.runtime import Runtime
from runtime_worker.store import FleetStore
from runtime_worker.store._redis_batch import Acquisition
from runtime_worker.store._scripts import answer
from runtime_worker.store.redis import RedisStore
from shared.errors import RuntimeUnavailable
from shared.models import CreateWorker
from shared.settings import Settings
from tests.fleet.conftest import delete_namespace
from tests.fleet.support import HEARTBEAT_MS, LEASE_TTL_MS, store_of
from tests.helpers import wait_until

pytestmark = pytest.mark.redis

BATCH = 50  # acquisitions per batch here: a few hundred Workers make several batches
IN_FLIGHT = 3

Acquire = Callable[[Sequence[str], str, int], Any]


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_member_placement, "ADOPT_BATCH", BATCH)
    monkeypatch.setattr(_member_placement, "ADOPTS_IN_FLIGHT", IN_FLIGHT)


@pytest.fixture
async def members(redis_url: str, namespace: str) -> AsyncIterator[Callable[..., Member]]:
    """Members whose steps the test calls itself (no loops): made taking, closed after."""
    made: list[Member] = []

    def factory(member_id: str, **overrides: object) -> Member:
        fields: dict[str, object] = {
            "redis_url": redis_url,
            "namespace": namespace,
            "member_id": member_id,
            "lease_ttl_ms": 30_000,  # outlives the test: a lease read back is the one taken
            "heartbeat_ms": HEARTBEAT_MS,
            "sweep_interval_ms": 60_000,
            **overrides,
        }
        member = Member(Settings.model_validate(fields))
        member._taking = True  # as start() makes it, without its loops
        made.append(member)
        return member

    yield factory
    for member in made:
        member._taking = False
        await member.host.drop_many(member.host.hosted(), release=True)
        await member.store.aclose()
    delete_namespace(redis_url, namespace)


async def _create(client: Runtime, count: int) -> list[str]:
    made: list[str] = []
    for start in range(0, count, 500):
        size = min(500, count - start)
        requests = [CreateWorker(display_name=f"w{start + n}") for n in range(size)]
        details = await client.create_workers(requests)
        made.extend(d.worker_id for d in details)
    return made


def _watch(store: FleetStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the store's `acquire_many` calls out at once; the answer's last item is the most."""
    real: Acquire = store.acquire_many
    seen = [0, 0]  # out now, most out at once

    async def counted(worker_ids: Sequence[str], member_id: str, ttl_ms: int) -> Any:
        seen[0] += 1
        seen[1] = max(seen)
        try:
            return await real(worker_ids, member_id, ttl_ms)
        finally:
            seen[0] -= 1

    monkeypatch.setattr(store, "acquire_many", counted)
    return seen


def _batches_running() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if "_adopt" in getattr(t.get_coro(), "__qualname__", "")]


async def _leases(store: RedisStore, worker_ids: Sequence[str]) -> dict[str, str | None]:
    holders = await answer(store.client.mget([store.keys.lease(w) for w in worker_ids]))
    return dict(zip(worker_ids, holders, strict=True))


async def _unhosted(store: RedisStore) -> set[str]:
    found: set[str] = await answer(store.client.smembers(store.keys.unhosted()))
    return found


async def test_batches_in_flight_take_exactly_the_share(
    members: Callable[..., Member], client: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A capacity that is not a whole number of batches: the batches out at once reserve
    their sizes, so the member takes exactly its capacity, no lease beyond it."""
    worker_ids = await _create(client, 400)
    member = members("m1", capacity=275)
    seen = _watch(member.store, monkeypatch)
    assert await member.take_hinted(worker_ids) == 275
    assert seen[1] == IN_FLIGHT  # side by side, not one after another
    assert member.host.hosted_count == 275
    leases = await _leases(store_of(client), worker_ids)
    assert sorted(w for w, holder in leases.items() if holder == "m1") == sorted(
        member.host.hosted()
    )
    assert set(member.host.hosted()) == set(worker_ids[:275])  # in order, none skipped
    assert await _unhosted(store_of(client)) == set(worker_ids[275:])


async def test_two_members_taking_at_once_never_host_one_worker_twice(
    members: Callable[..., Member], client: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both members try every Worker (in the same order: the worst case), each with batches
    in flight: every lease has one holder, the one hosting it, and neither passes its share."""
    worker_ids = await _create(client, 600)
    first, second = members("m1", capacity=400), members("m2", capacity=400)
    for member in (first, second):
        await member.store.heartbeat(member.member_id, 400, 0)
    for member in (first, second):
        await member._refresh_members()  # each sees the other alive: no retry of its leases
    seen = [_watch(m.store, monkeypatch) for m in (first, second)]
    taken = await asyncio.gather(first._take(worker_ids, 400), second._take(worker_ids, 400))
    assert all(s[1] > 1 for s in seen)
    hosted = [set(first.host.hosted()), set(second.host.hosted())]
    assert list(taken) == [len(h) for h in hosted]
    assert all(len(h) <= 400 for h in hosted)
    assert not hosted[0] & hosted[1]
    assert hosted[0] | hosted[1] == set(worker_ids)  # 800 places for 600: every one taken
    leases = await _leases(store_of(client), worker_ids)
    assert {w for w, holder in leases.items() if holder == "m1"} == hosted[0]
    assert {w for w, holder in leases.items() if holder == "m2"} == hosted[1]
    assert await _unhosted(store_of(client)) == set()


async def test_a_failed_batch_leaves_its_workers_to_the_sweep(
    members: Callable[..., Member], client: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second batch is acquired in Redis but its answer is lost (Redis went away): the
    step fails, no batch is left running, and those Workers stay in the unhosted set, so a
    sweep takes them once the leases nobody hosts have expired."""
    worker_ids = await _create(client, 300)
    member = members("m1", capacity=1000, lease_ttl_ms=3 * LEASE_TTL_MS)
    store = member.store
    real: Acquire = store.acquire_many
    calls = 0

    async def second_lost(worker_ids: Sequence[str], member_id: str, ttl_ms: int) -> Any:
        nonlocal calls
        calls += 1
        call = calls
        answers: dict[str, Acquisition] = await real(worker_ids, member_id, ttl_ms)
        if call == 2:
            raise RuntimeUnavailable("the connection broke before the answer")
        return answers

    monkeypatch.setattr(store, "acquire_many", second_lost)
    with pytest.raises(RuntimeUnavailable):
        await member.take_hinted(worker_ids)
    assert _batches_running() == []
    lost = set(worker_ids[BATCH : 2 * BATCH])
    assert not lost & set(member.host.hosted())
    assert lost <= await _unhosted(store_of(client))
    leases = await _leases(store_of(client), sorted(lost))
    assert set(leases.values()) == {"m1"}  # taken in Redis, unknown to the member

    monkeypatch.setattr(store, "acquire_many", real)

    async def swept() -> bool:
        await member.place_unhosted()
        return member.host.hosted_count == len(worker_ids)

    await wait_until(swept, timeout_s=3 * LEASE_TTL_MS / 1000 + 10, what="the lost batch swept")
    assert await _unhosted(store_of(client)) == set()


async def test_a_step_cancelled_mid_take_leaves_no_batch_running(
    members: Callable[..., Member], client: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop cancels the placement loop in the middle of a take: every batch it had out
    ends with it; the Workers it did not host stay in the unhosted set."""
    worker_ids = await _create(client, 300)
    member = members("m1", capacity=1000)
    store = member.store
    real: Acquire = store.acquire_many
    started = asyncio.Event()
    held = asyncio.Event()  # never set: the batches wait until cancelled

    async def hold(worker_ids: Sequence[str], member_id: str, ttl_ms: int) -> Any:
        started.set()
        await held.wait()
        return await real(worker_ids, member_id, ttl_ms)

    monkeypatch.setattr(store, "acquire_many", hold)
    step = asyncio.ensure_future(member.take_hinted(worker_ids))
    await asyncio.wait_for(started.wait(), timeout=5)
    step.cancel()
    with pytest.raises(asyncio.CancelledError):
        await step
    assert _batches_running() == []
    assert member.host.hosted_count == 0
    assert await _unhosted(store_of(client)) == set(worker_ids)


async def test_the_registry_hears_of_new_workers_before_the_next_heartbeat(
    redis_url: str, namespace: str, client: Runtime
) -> None:
    """Heartbeats a minute apart: the members' listing still shows the hosted count within
    moments of the member taking the Workers (its heartbeat is woken by the change)."""
    settings = Settings(
        redis_url=redis_url,
        namespace=namespace,
        member_id="m1",
        lease_ttl_ms=60_000,
        heartbeat_ms=60_000,
        sweep_interval_ms=60_000,
    )
    member = Member(settings)
    await member.start()
    try:

        async def registered() -> bool:
            return any(m.member_id == "m1" for m in await client.members())

        await wait_until(registered, timeout_s=5, what="the member's first heartbeat")
        worker_ids = await _create(client, 120)

        async def reported() -> bool:
            counts = {m.member_id: m.hosted for m in await client.members()}
            return counts.get("m1") == len(worker_ids)

        await wait_until(reported, timeout_s=5, what="the hosted count in the registry")
    finally:
        await member.stop(grace_s=0)
        delete_namespace(redis_url, namespace)


async def test_a_sweep_of_the_unhosted_does_not_cut_the_share_hints_raised(
    members: Callable[..., Member], client: Runtime
) -> None:
    """The other member's heartbeat lags its acquisitions (it says 0 while it holds 40): a
    steady-state sweep counts low, and a member that believed it would leave its share of
    the next hinted Workers to later sweeps. It keeps the higher count until a full sweep."""
    store = store_of(client)
    worker_ids = await _create(client, 100)
    await store.heartbeat("m2", 1000, 0)
    taken_by_m2 = await store.acquire_many(worker_ids[:40], "m2", 30_000)
    assert all(a.epoch for a in taken_by_m2.values())
    await store.settle_unhosted(worker_ids[:40])
    member = members("m1", capacity=1000)
    assert await member.take_hinted(worker_ids) == 50  # half of the 100 it knows of
    assert await member.place_unhosted() == 0  # at its share: nothing more to take
    more = await _create(client, 20)
    assert await member.take_hinted(more) == 10  # half of the new ones, as before the sweep
