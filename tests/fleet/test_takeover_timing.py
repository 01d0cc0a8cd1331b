"""A member takes a dead member's Workers the moment their leases lapse: the death is timed from
the registry's heartbeats and the leases' remaining time, not found by the periodic sweep."""

from __future__ import annotations

import pytest

from runtime_worker.member import Member
from runtime_worker.runtime import Runtime
from shared.models import SendInput, Strategy
from shared.settings import Settings
from tests.fleet.conftest import delete_namespace
from tests.fleet.support import HEARTBEAT_MS, LEASE_TTL_MS, create_workers, records, store_of
from tests.helpers import wait_until

pytestmark = pytest.mark.redis

GHOST_LEASE_MS = LEASE_TTL_MS + 500  # outlives the ghost's heartbeat: a retry must wait for it


async def test_a_dead_members_workers_move_before_any_periodic_sweep(
    redis_url: str, namespace: str, client: Runtime
) -> None:
    store = store_of(client)
    worker_ids = await create_workers(client, 6)
    # A member that heartbeats once, takes every Worker and dies without a word.
    await store.heartbeat("ghost", 1000, len(worker_ids))
    taken = await store.acquire_many(worker_ids, "ghost", GHOST_LEASE_MS)
    assert all(answer.epoch == 1 for answer in taken.values())
    waiting = worker_ids[0]
    accepted = await client.send_input(waiting, SendInput(text="hi", strategy=Strategy.ENQUEUE))

    settings = Settings(
        redis_url=redis_url,
        namespace=namespace,
        member_id="survivor",
        lease_ttl_ms=LEASE_TTL_MS,
        heartbeat_ms=HEARTBEAT_MS,
        sweep_interval_ms=60_000,  # the first sweep runs at start, the next one a minute later
    )
    member = Member(settings)
    await member.start()
    try:

        async def moved() -> bool:
            found = await records(client)
            return all(found[w].host == "survivor" and found[w].epoch == 2 for w in worker_ids)

        await wait_until(moved, timeout_s=10, what="the ghost's workers on the survivor")

        async def answered() -> bool:
            page = await client.events(waiting, after=accepted.cursor, limit=100)
            return any(e.type == "run_finished" for e in page.events)

        await wait_until(answered, timeout_s=10, what="the waiting input answered by the survivor")
    finally:
        await member.stop(grace_s=0)
        delete_namespace(redis_url, namespace)
