"""Every store call has its own deadline: on a Redis that stops answering without refusing (a
TCP proxy that blackholes), calls queued behind a batch in flight fail on their own time, and
the store works again as soon as Redis answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path

import pytest

from runtime_worker.store.base import Submission, WorkerRecord
from runtime_worker.store.redis import RedisStore
from shared.errors import RuntimeUnavailable
from shared.ids import new_id
from shared.models import Strategy
from shared.settings import Settings
from shared.timeutil import now_s
from tests.redis_cluster import TcpProxy
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

DEADLINE_S = 0.5
MARGIN_S = 0.4  # scheduling on a loaded machine; far below the 10 s waves this replaces


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[TcpProxy]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    made = TcpProxy(server.port).start()
    yield made
    made.stop()
    server.stop()


@pytest.fixture
async def store(proxy: TcpProxy, namespace: str) -> AsyncIterator[RedisStore]:
    settings = Settings(redis_call_timeout_s=DEADLINE_S)
    made = RedisStore.from_url(
        proxy.url, namespace=namespace, runtime_id="fleet", settings=settings
    )
    yield made
    await made.aclose()


async def timed_failure(call: Awaitable[object]) -> float:
    started = time.monotonic()
    with pytest.raises(RuntimeUnavailable) as caught:
        await call
    assert caught.value.retryable
    return time.monotonic() - started


async def test_calls_queued_behind_a_stuck_batch_fail_within_their_own_deadline(
    store: RedisStore, proxy: TcpProxy
) -> None:
    record = WorkerRecord(
        worker_id=new_id(), display_name="w", profile="companion", created_at=now_s()
    )
    await store.create(record)
    proxy.blackhole()

    def submit(n: int) -> Awaitable[Submission]:
        return store.submit_input(record.worker_id, f"n{n}", f"i{n}", Strategy.ENQUEUE, now_s())

    first = asyncio.ensure_future(submit(0))  # goes on the wire at once, and hangs there
    await asyncio.sleep(0)  # settle-ok: one loop turn, so the first call is written first
    queued = [asyncio.ensure_future(submit(n)) for n in range(1, 20)]  # wait behind it
    took = await asyncio.gather(timed_failure(first), *(timed_failure(q) for q in queued))
    assert max(took) < DEADLINE_S + MARGIN_S, took
    # Later calls too: a read, a batched read, a blocking read (its wait plus the deadline).
    assert await timed_failure(store.get_worker(record.worker_id)) < DEADLINE_S + MARGIN_S
    assert await timed_failure(store.listing()) < DEADLINE_S + MARGIN_S
    waited = await timed_failure(store.tail_events(record.worker_id, "0-0", 10, 300))
    assert waited < DEADLINE_S + 0.3 + MARGIN_S

    proxy.forward()
    after = await store.submit_input(record.worker_id, "after", "after", Strategy.ENQUEUE, now_s())
    assert after.input_id == "after" and not after.duplicate
    # A 503 is "outcome unknown": the same input id again answers once, whichever landed.
    again = await store.submit_input(record.worker_id, "n5", "i5", Strategy.ENQUEUE, now_s())
    assert again.input_id == "i5"
    assert (await store.get_worker(record.worker_id)).queue_depth >= 2
