"""One Store contract, every implementation: memory, real Redis, and fakeredis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from runtime_worker.store.base import Store
from runtime_worker.store.memory import MemoryStore
from shared.settings import Settings

StoreFactory = Callable[[Settings], Store]


@pytest.fixture(params=["memory", "redis", "fakeredis"])
async def make_store(
    request: pytest.FixtureRequest, redis_url: str, namespace: str
) -> AsyncIterator[StoreFactory]:
    made: list[Store] = []

    def factory(settings: Settings) -> Store:
        store: Store
        if request.param == "memory":
            store = MemoryStore(settings)
        elif request.param == "redis":
            from runtime_worker.store.redis import RedisStore

            store = RedisStore.from_url(
                redis_url, namespace=namespace, runtime_id="fleet", settings=settings
            )
        else:
            import fakeredis

            from runtime_worker.store.redis import RedisStore

            store = RedisStore(
                fakeredis.FakeAsyncRedis(decode_responses=True),
                namespace=namespace,
                runtime_id="fleet",
                settings=settings,
            )
        made.append(store)
        return store

    yield factory
    for store in made:
        if request.param == "redis":  # never flush: drop this test's namespace only
            from runtime_worker.store.redis import RedisStore

            assert isinstance(store, RedisStore)
            keys = [k async for k in store.client.scan_iter(match="{" + namespace + ":*")]
            if keys:
                await store.client.delete(*keys)
        await store.aclose()


@pytest.fixture
def store(make_store: StoreFactory) -> Store:
    return make_store(Settings(events_maxlen=1000))
