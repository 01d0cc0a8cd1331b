"""`Store.bind_conversation`: compare-and-set of a conversation digest to a Worker id, on every
store implementation."""

from __future__ import annotations

import asyncio

from runtime_worker.store.base import Store
from shared.ids import new_id

DIGEST = "0123456789abcdef0123456789abcdef"
TTL_S = 60


async def test_the_first_bind_wins_and_later_ones_read_it(store: Store) -> None:
    first, second = new_id(), new_id()
    assert await store.bind_conversation(DIGEST, first, replace=None, ttl_s=TTL_S) == first
    assert await store.bind_conversation(DIGEST, second, replace=None, ttl_s=TTL_S) == first
    other = "f" * 32
    assert await store.bind_conversation(other, second, replace=None, ttl_s=TTL_S) == second


async def test_replace_takes_over_only_from_the_named_worker(store: Store) -> None:
    stale, fresh, late = new_id(), new_id(), new_id()
    await store.bind_conversation(DIGEST, stale, replace=None, ttl_s=TTL_S)
    assert await store.bind_conversation(DIGEST, fresh, replace=stale, ttl_s=TTL_S) == fresh
    # A second taker that also saw `stale` loses to the first one.
    assert await store.bind_conversation(DIGEST, late, replace=stale, ttl_s=TTL_S) == fresh


async def test_concurrent_binds_agree_on_one_worker(store: Store) -> None:
    candidates = [new_id() for _ in range(16)]
    bound = await asyncio.gather(
        *(store.bind_conversation(DIGEST, c, replace=None, ttl_s=TTL_S) for c in candidates)
    )
    assert len(set(bound)) == 1 and bound[0] in candidates
