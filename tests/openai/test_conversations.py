"""`Runtime.conversation_worker` on the embedded runtime and on a fleet runtime over the real
Redis: concurrent first calls with one key create one Worker, and a binding whose Worker never
appeared or has ended is replaced by a new one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from runtime_worker import conversations
from runtime_worker.runtime import Runtime
from shared.ids import new_id
from shared.settings import Settings
from tests.fleet.support import store_of


@pytest.fixture(params=["embedded", "fleet"])
async def runtime(
    request: pytest.FixtureRequest, namespace: str, redis_url: str
) -> AsyncIterator[Runtime]:
    settings = Settings(namespace=namespace, redis_url=redis_url, fleets=["fleet"])
    made = (
        Runtime.embedded(settings)
        if request.param == "embedded"
        else Runtime.fleet("fleet", settings)
    )
    async with made:
        yield made


async def test_concurrent_first_calls_create_one_worker(runtime: Runtime) -> None:
    found = await asyncio.gather(
        *(runtime.conversation_worker("assistant", "dana") for _ in range(8))
    )
    assert len({detail.worker_id for detail in found}) == 1
    assert len(await runtime.list_workers()) == 1
    again = await runtime.conversation_worker("assistant", "dana")
    assert again.worker_id == found[0].worker_id
    other_profile = await runtime.conversation_worker("companion", "dana")
    assert other_profile.worker_id != again.worker_id


async def test_an_ended_worker_is_replaced(runtime: Runtime) -> None:
    first = await runtime.conversation_worker("assistant", "erin")
    await runtime.stop_worker(first.worker_id)
    second = await runtime.conversation_worker("assistant", "erin")
    assert second.worker_id != first.worker_id
    assert (await runtime.conversation_worker("assistant", "erin")).worker_id == second.worker_id


async def test_a_binding_whose_worker_never_appeared_is_taken_over(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conversations, "CREATE_WAIT_S", 0.2)
    digest = conversations.conversation_digest("assistant", "finn")
    ghost = new_id()  # bound by a creator that died before creating it
    await runtime.store.bind_conversation(digest, ghost, replace=None, ttl_s=60)
    found = await runtime.conversation_worker("assistant", "finn")
    assert found.worker_id != ghost
    assert [w.worker_id for w in await runtime.list_workers()] == [found.worker_id]


async def test_redis_keeps_a_digest_with_a_ttl(namespace: str, redis_url: str) -> None:
    settings = Settings(namespace=namespace, redis_url=redis_url, fleets=["fleet"])
    async with Runtime.fleet("fleet", settings) as fleet:
        found = await fleet.conversation_worker("assistant", "user@example.com")
        store = store_of(fleet)
        digest = conversations.conversation_digest("assistant", "user@example.com")
        key = store.keys.conversation(digest)
        assert await store.client.get(key) == found.worker_id
        assert 0 < await store.client.ttl(key) <= settings.retention_s
        async for name in store.client.scan_iter(match="{" + namespace + ":*"):
            assert "example" not in name
            if await store.client.type(name) == "string":
                assert "example" not in (await store.client.get(name) or "")
