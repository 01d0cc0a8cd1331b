"""One Store contract, every implementation in `backends.BACKENDS`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from runtime_worker.store.base import Store
from shared.settings import Settings
from tests.contract.backends import BACKENDS, Where

StoreFactory = Callable[[Settings], Store]


@pytest.fixture(params=sorted(BACKENDS))
async def make_store(request: pytest.FixtureRequest, namespace: str) -> AsyncIterator[StoreFactory]:
    backend = BACKENDS[request.param]
    where = Where(request.getfixturevalue(backend.url_fixture), namespace)
    made: list[Store] = []

    def factory(settings: Settings) -> Store:
        store = backend.make(settings, where)
        made.append(store)
        return store

    yield factory
    for store in made:
        await store.aclose()
    await backend.cleanup(where)


@pytest.fixture
def store(make_store: StoreFactory) -> Store:
    return make_store(Settings(events_maxlen=1000))
