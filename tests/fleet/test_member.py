"""`Member` objects in this event loop on real Redis: handing back, spreading, hints, races."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from runtime_worker.member import Member, new_member_id
from runtime_worker.runtime import Runtime
from runtime_worker.schedule import add_recurring
from runtime_worker.store._scripts import answer
from shared.errors import InvalidInput, WorkerBusy
from shared.keys import is_member_key_part
from shared.models import CreateWorker, SendInput, Strategy
from shared.settings import Settings
from shared.timeutil import now_s
from tests.fleet.conftest import delete_namespace
from tests.fleet.support import (
    HEARTBEAT_MS,
    LEASE_TTL_MS,
    SWEEP_INTERVAL_MS,
    create_workers,
    monotonic,
    records,
    store_of,
    wait_hosted,
    wait_members,
)
from tests.helpers import wait_until

pytestmark = pytest.mark.redis

MemberFactory = Callable[..., Awaitable[Member]]


@pytest.fixture
async def make_member(redis_url: str, namespace: str) -> AsyncIterator[MemberFactory]:
    made: list[Member] = []

    async def factory(member_id: str, **overrides: object) -> Member:
        fields: dict[str, object] = {
            "redis_url": redis_url,
            "namespace": namespace,
            "member_id": member_id,
            "lease_ttl_ms": LEASE_TTL_MS,
            "heartbeat_ms": HEARTBEAT_MS,
            "sweep_interval_ms": SWEEP_INTERVAL_MS,
            "schedule_tick_s": 1,
            **overrides,
        }
        settings = Settings.model_validate(fields)
        member = Member(settings)
        made.append(member)
        await member.start()
        return member

    yield factory
    await asyncio.gather(*(m.stop(grace_s=0) for m in made))
    delete_namespace(redis_url, namespace)


def test_generated_member_ids_are_key_safe_and_unique() -> None:
    ids = {new_member_id() for _ in range(20)}
    assert len(ids) == 20
    assert all(is_member_key_part(i) and "/" not in i for i in ids)


async def test_graceful_stop_hands_leases_back_at_once(
    make_member: MemberFactory, client: Runtime
) -> None:
    member = await make_member("solo")
    worker_ids = await create_workers(client, 10)
    await wait_hosted(client, worker_ids)
    store = store_of(client)
    started = monotonic()
    await member.stop()
    took = monotonic() - started
    assert took < 0.5, took
    found = await records(client)
    assert all(found[w].host is None for w in worker_ids), [
        (found[w].host, found[w].epoch) for w in worker_ids if found[w].host
    ]
    leases = [await store.client.exists(store.keys.lease(w)) for w in worker_ids]
    assert leases == [0] * len(worker_ids)
    assert "solo" not in {m.member_id for m in await client.members()}
    await member.stop()  # idempotent


async def test_members_spread_evenly_and_rebalance_when_one_joins(
    make_member: MemberFactory, client: Runtime
) -> None:
    first = await make_member("a")
    worker_ids = await create_workers(client, 60)
    await wait_hosted(client, worker_ids)

    async def all_adopted() -> bool:  # the lease is in Redis a moment before the host has it
        return first.host.hosted_count == 60

    await wait_until(all_adopted, timeout_s=5, what="the first member hosting all 60")
    await make_member("b")
    await make_member("c")

    async def even() -> bool:
        hosts = Counter(r.host for r in (await records(client)).values())
        return set(hosts) == {"a", "b", "c"} and all(16 <= n <= 24 for n in hosts.values())

    await wait_until(even, timeout_s=15, what="60 workers spread over three members")


async def test_placement_hint_hosts_a_new_worker_before_any_sweep(
    make_member: MemberFactory, client: Runtime
) -> None:
    member = await make_member("hinted", sweep_interval_ms=60_000)
    await wait_members(client, ["hinted"])
    await member.place()  # the first sweep is done; the next one is a minute away
    started = monotonic()
    detail = await client.create_worker(CreateWorker(display_name="fresh"))  # it hints members
    await wait_hosted(client, [detail.worker_id], timeout_s=2)
    print(f"hinted placement: {monotonic() - started:.3f}s")


async def test_a_sweep_of_the_unhosted_takes_a_worker_whose_hint_was_lost(
    make_member: MemberFactory, client: Runtime
) -> None:
    """No full sweep and no hint: the steady-state sweep reads the unhosted set only, and a
    full sweep puts back in it a Worker an outage lost from it."""
    store = store_of(client)
    member = await make_member("unhinted", sweep_interval_ms=60_000)
    await wait_members(client, ["unhinted"])
    member._taking = False  # neither hints nor sweeps take anything meanwhile
    hinted, lost = await create_workers(client, 2)
    await store.settle_unhosted([lost])  # as if the create's SADD was lost with Redis
    member._taking = True
    assert await member.place_unhosted() == 1
    assert member.host.is_hosted(hinted) and not member.host.is_hosted(lost)
    assert await answer(store.client.smembers(store.keys.unhosted())) == set()
    member.settings = member.settings.model_copy(update={"capacity": 1})
    assert await member.place() == 0  # at its capacity: it cannot take it, it marks it
    assert await answer(store.client.smembers(store.keys.unhosted())) == {lost}


async def test_concurrent_reject_inputs_accept_exactly_one(
    make_member: MemberFactory, client: Runtime
) -> None:
    await make_member("m1", echo_delay_ms=50)
    (worker_id,) = await create_workers(client, 1)
    await wait_hosted(client, [worker_id])
    results = await asyncio.gather(
        *(
            client.send_input(worker_id, SendInput(text=f"race {i}", strategy=Strategy.REJECT))
            for i in range(50)
        ),
        return_exceptions=True,
    )
    accepted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(accepted) == 1
    assert len(refused) == 49 and all(isinstance(r, WorkerBusy) for r in refused)


async def test_a_recurring_input_ends_with_its_worker(
    make_member: MemberFactory, client: Runtime, redis_url: str, namespace: str
) -> None:
    member = await make_member("m1")
    (worker_id,) = await create_workers(client, 1)
    settings = Settings(redis_url=redis_url, namespace=namespace)
    with pytest.raises(InvalidInput):
        await add_recurring(settings, "fleet", worker_id, "hi", cron_expr="every minute")
    await add_recurring(
        settings, "fleet", worker_id, "hi", cron_expr="* * * * * *", schedule_id="gone"
    )
    await client.stop_worker(worker_id)
    await member.scheduler.fire_recurring(int(now_s()) + 2)
    store = store_of(client)
    assert not await store.client.hexists(store.keys.schedules(), "gone")  # type: ignore[misc]
