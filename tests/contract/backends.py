"""Every Store backend the suites check, by name: the contract suite and the model-based test
both take their stores from `BACKENDS`, so a new backend plugs into both with one entry. A
backend names the fixture giving the Redis it runs on (`url_fixture`): the shared server, or
the session's real Redis Cluster (found from the server, as a user's URL is)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis, RedisCluster

from runtime_worker.store.base import Store
from runtime_worker.store.memory import MemoryStore
from shared.settings import Settings


@dataclass(frozen=True)
class Where:
    """What a backend may need to make a store: the test Redis and a namespace of its own."""

    redis_url: str
    namespace: str


def _memory(settings: Settings, where: Where) -> Store:
    return MemoryStore(settings)


def _sqlite_dir(where: Where) -> Path:
    return Path(tempfile.gettempdir()) / f"yoi-contract-{where.namespace}"


def _sqlite(settings: Settings, where: Where) -> Store:
    from runtime_worker.store.sqlite import SqliteStore

    return SqliteStore(_sqlite_dir(where) / f"{uuid.uuid4().hex}.sqlite3", settings)


async def _drop_sqlite(where: Where) -> None:
    shutil.rmtree(_sqlite_dir(where), ignore_errors=True)


def _redis(settings: Settings, where: Where) -> Store:
    from runtime_worker.store.redis import RedisStore

    return RedisStore.from_url(
        where.redis_url, namespace=where.namespace, runtime_id="fleet", settings=settings
    )


def _fakeredis(settings: Settings, where: Where) -> Store:
    import fakeredis

    from runtime_worker.store.redis import RedisStore

    return RedisStore(
        fakeredis.FakeAsyncRedis(decode_responses=True),
        namespace=where.namespace,
        runtime_id="fleet",
        settings=settings,
    )


async def _drop_namespace(where: Where) -> None:
    """Delete this test's keys on the shared Redis: never a flush."""
    client = Redis.from_url(where.redis_url, decode_responses=True)
    try:
        keys = [key async for key in client.scan_iter(match="{" + where.namespace + ":*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def _drop_cluster_namespace(where: Where) -> None:
    """The same on a cluster: the namespace's keys live on every node, deleted one by one."""
    client = RedisCluster.from_url(where.redis_url, decode_responses=True)
    try:
        keys = [key async for key in client.scan_iter(match="{" + where.namespace + ":*")]
        for key in keys:
            await client.delete(key)
    finally:
        await client.aclose()


async def _nothing(where: Where) -> None:
    return None


@dataclass(frozen=True)
class Backend:
    make: Callable[[Settings, Where], Store]
    cleanup: Callable[[Where], Awaitable[None]] = _nothing
    url_fixture: str = "redis_url"


BACKENDS: dict[str, Backend] = {
    "memory": Backend(_memory),
    "sqlite": Backend(_sqlite, _drop_sqlite),
    "redis": Backend(_redis, _drop_namespace),
    "cluster": Backend(_redis, _drop_cluster_namespace, url_fixture="redis_cluster_url"),
    "fakeredis": Backend(_fakeredis),
}
