"""The hubs' shared reader (gateway/mux.py) on a real Redis with an in-process member: one read
for many Workers, a Worker joining while it blocks, one Worker's failure ending only its hub,
and the read ending with its last hub; Redis away against a scripted reader."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, cast

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from gateway.hub import Hub, Hubs, Subscription
from gateway.mux import Mux
from runtime_worker.member import Member
from runtime_worker.runtime import Runtime
from runtime_worker.store.base import EventMux
from runtime_worker.store.memory import MemoryStore
from runtime_worker.store.redis import RedisStore
from shared.errors import (
    CursorExpired,
    InvalidInput,
    RuntimeUnavailable,
    WorkerNotFound,
    YoiError,
)
from shared.events import Event, EventPage, TextDelta
from shared.ids import new_id
from shared.keys import Keys
from shared.settings import MIN_EVENTS_MAXLEN, Settings
from tests.gateway.support import BlockingReads, fleet_settings_for, running_app, state
from tests.helpers import wait_until

pytestmark = pytest.mark.redis

FLEET = "/api/runtimes/fleet"
WAIT_S = 10.0
PROMPT_S = 3.0  # well under a read's wait when a test stretches it (`LONG_WAIT_MS`)
LONG_WAIT_MS = 60_000


@pytest.fixture
def fleet_settings(namespace: str, redis_url: str, request: pytest.FixtureRequest) -> Settings:
    """Fleet settings; `events_maxlen` by indirect parametrization."""
    extra = {"events_maxlen": request.param} if hasattr(request, "param") else {}
    return fleet_settings_for(namespace, redis_url, **extra)


@pytest.fixture
async def fleet(fleet_settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with running_app(fleet_settings) as pair:
        member = Member(fleet_settings)
        await member.start()
        try:
            yield pair
        finally:
            await member.stop()


async def create(client: httpx.AsyncClient) -> str:
    created = await client.post(f"{FLEET}/workers", json={"display_name": "m"})
    assert created.status_code == 201, created.text
    return str(created.json()["worker_id"])


async def send(
    client: httpx.AsyncClient, worker_id: str, text: str, **extra: Any
) -> dict[str, Any]:
    body = {"text": text, **extra}
    sent = await client.post(f"{FLEET}/workers/{worker_id}/inputs", json=body)
    assert sent.status_code in (200, 202), sent.text
    return dict(sent.json())


async def until(condition: Callable[[], bool], what: str) -> None:
    async def holds() -> bool:
        return condition()

    await wait_until(holds, timeout_s=PROMPT_S, what=what)


async def until_finished(subscription: Subscription, input_id: str) -> list[Event]:
    """What the subscription carries up to the input's `run_finished`."""
    got: list[Event] = []
    async with asyncio.timeout(WAIT_S):
        while not any(e.type == "run_finished" and e.input_id == input_id for e in got):
            assert not subscription.closed.is_set(), subscription.failure
            got += await subscription.take()
    return got


async def log_after(client: httpx.AsyncClient, worker_id: str, after: str) -> list[dict[str, Any]]:
    page = await client.get(f"{FLEET}/workers/{worker_id}/events", params={"after": after})
    return list(page.json()["events"])


def dumped(events: list[Event]) -> list[dict[str, Any]]:
    return [e.model_dump(mode="json", exclude_none=True) for e in events]


class GatedReads:
    """Holds every mux read of `runtime` made from now on until `gate` is set."""

    def __init__(self, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        real_mux = runtime.event_mux

        def gated_mux() -> EventMux | None:
            mux = real_mux()
            assert mux is not None
            real_read = mux.read

            async def gated(
                cursors: Mapping[str, str], limit: int, timeout_ms: int
            ) -> dict[str, list[Event] | YoiError]:
                await self.gate.wait()
                return await real_read(cursors, limit, timeout_ms)

            monkeypatch.setattr(mux, "read", gated)
            return mux

        monkeypatch.setattr(runtime, "event_mux", gated_mux)


def the_mux(hub: Hub) -> Mux:
    assert hub.mux is not None, "the hub is read by a mux"
    return hub.mux


async def ended_alone(
    ended: Subscription,
    error: type[YoiError],
    client: httpx.AsyncClient,
    other_worker: str,
    other: Subscription,
) -> None:
    """`ended`'s stream closed with `error`, and the other hub of its read goes on."""
    await asyncio.wait_for(ended.closed.wait(), WAIT_S)
    assert isinstance(ended.failure, error)
    accepted = await send(client, other_worker, "the other one reads on")
    await until_finished(other, accepted["input_id"])
    assert not other.closed.is_set()


async def test_one_read_carries_every_followed_worker_without_gap_or_repeat(
    fleet: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, client = fleet
    hubs = state(app).hubs
    runtime = state(app).runtimes().get("fleet")
    reads = BlockingReads(runtime, monkeypatch)
    workers = [await create(client) for _ in range(6)]
    joined = []
    for worker_id in workers:
        subscription = hubs.subscription()
        hub, head = await hubs.join(runtime, worker_id, subscription)
        joined.append((worker_id, subscription, hub, head))
    assert len({the_mux(hub) for _, _, hub, _ in joined}) == 1 and hubs.readers() == 6
    carried: dict[str, list[Event]] = {worker_id: [] for worker_id in workers}
    for _round in range(2):
        sent = await asyncio.gather(*(send(client, w, "one two three") for w in workers))
        for (worker_id, subscription, _hub, head), accepted in zip(joined, sent, strict=True):
            carried[worker_id] += await until_finished(subscription, accepted["input_id"])
            got = carried[worker_id]
            assert dumped(got) == (await log_after(client, worker_id, head))[: len(got)]
    assert reads.most == 1, "one reader for all the Workers"
    for _, subscription, hub, _ in joined:
        hubs.leave(hub, subscription)
    assert hubs.readers() <= 1  # the read told to stop, until it has ended
    await until(lambda: hubs.readers() == 0, "no reader")


async def test_a_worker_joining_while_the_read_blocks_is_read_at_once(
    fleet: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.mux.MUX_WAIT_MS", LONG_WAIT_MS)
    app, client = fleet
    hubs = state(app).hubs
    runtime = state(app).runtimes().get("fleet")
    first, second = await create(client), await create(client)

    async def hosted() -> bool:  # so no event of `first` ends its read early
        details = [(await client.get(f"{FLEET}/workers/{w}")).json() for w in (first, second)]
        return all(d["state"] != "pending" for d in details)

    await wait_until(hosted, timeout_s=WAIT_S, what="both hosted")
    hub, _ = await hubs.join(runtime, first, hubs.subscription())
    mux = the_mux(hub)
    await until(lambda: mux._sent is not None, "the read out")
    late = hubs.subscription()
    late_hub, _ = await hubs.join(runtime, second, late)
    assert the_mux(late_hub) is mux
    accepted = await send(client, second, "are you there")
    async with asyncio.timeout(PROMPT_S):  # the read it was not in waits LONG_WAIT_MS
        got = await until_finished(late, accepted["input_id"])
    assert "".join(e.text for e in got if isinstance(e, TextDelta)) == "You said: are you there"
    await hubs.aclose()


@pytest.mark.parametrize("fleet_settings", [MIN_EVENTS_MAXLEN], indirect=True)
async def test_a_trimmed_cursor_ends_only_its_hub(
    fleet: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, client = fleet
    hubs = state(app).hubs
    runtime = state(app).runtimes().get("fleet")
    reads = GatedReads(runtime, monkeypatch)
    behind, fine = await create(client), await create(client)
    lagging, steady = hubs.subscription(), hubs.subscription()
    _, head = await hubs.join(runtime, behind, lagging)
    await hubs.join(runtime, fine, steady)
    reads.gate.clear()  # the next read waits: `behind` is trimmed past the hub's cursor
    for n in range(MIN_EVENTS_MAXLEN):
        finished = await send(client, behind, f"input {n}", wait_s=WAIT_S)
        assert finished["state"] == "finished", finished
    page = await client.get(f"{FLEET}/workers/{behind}/events", params={"after": head})
    assert page.json()["error"]["code"] == "cursor_expired"  # trimmed past the hub's cursor
    reads.gate.set()
    await ended_alone(lagging, CursorExpired, client, fine, steady)
    await hubs.aclose()


async def test_a_vanished_worker_ends_only_its_hub(
    fleet: tuple[FastAPI, httpx.AsyncClient],
    fleet_settings: Settings,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("gateway.mux.MUX_WAIT_MS", 100)
    monkeypatch.setattr("gateway.mux.IDLE_CHECK_S", 0.3)
    app, client = fleet
    hubs = state(app).hubs
    runtime = state(app).runtimes().get("fleet")
    gone, kept = await create(client), await create(client)
    ending, staying = hubs.subscription(), hubs.subscription()
    await hubs.join(runtime, gone, ending)
    await hubs.join(runtime, kept, staying)
    keys = Keys(fleet_settings.namespace, "fleet").worker(gone)
    raw = aioredis.Redis.from_url(redis_url)
    try:
        await raw.delete(keys.record, keys.events)  # as its retention ending does
    finally:
        await raw.aclose()
    await ended_alone(ending, WorkerNotFound, client, kept, staying)
    await hubs.aclose()


async def test_the_last_hub_out_ends_the_read_at_once(
    fleet: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.mux.MUX_WAIT_MS", LONG_WAIT_MS)
    app, client = fleet
    hubs = state(app).hubs
    runtime = state(app).runtimes().get("fleet")
    joined = []
    for _ in range(2):
        subscription = hubs.subscription()
        hub, _ = await hubs.join(runtime, await create(client), subscription)
        joined.append((hub, subscription))
    mux = the_mux(joined[0][0])
    await until(lambda: mux._sent is not None, "the read out")
    task = mux._task
    assert task is not None
    hubs.leave(*joined[0])
    assert not task.done() and hubs.readers() == 1
    hubs.leave(*joined[1])
    done, _ = await asyncio.wait({task}, timeout=PROMPT_S)  # not LONG_WAIT_MS later
    assert done and task.cancelled() and hubs.readers() == 0 and len(hubs) == 0


async def test_a_store_read_of_many_streams_ends_when_woken(redis_url: str, namespace: str) -> None:
    """Woken while blocked, and woken before the read reached Redis: both end at once."""
    name = f"mux-{namespace}"
    settings = Settings(namespace=namespace)
    store = RedisStore.from_url(
        redis_url, namespace=namespace, runtime_id="fleet", settings=settings, client_name=name
    )
    raw = aioredis.Redis.from_url(redis_url)

    async def blocked() -> bool:
        return any(c["name"] == name and "b" in c["flags"] for c in await raw.client_list())

    try:
        mux = store.event_mux()
        assert mux is not None
        cursors = {new_id(): "0-0", new_id(): "0-0"}
        read = asyncio.create_task(mux.read(cursors, 10, LONG_WAIT_MS))
        await wait_until(blocked, timeout_s=PROMPT_S, what="the read blocked in Redis")
        await mux.wake()
        assert await asyncio.wait_for(read, PROMPT_S) == {}
        read = asyncio.create_task(mux.read(cursors, 10, LONG_WAIT_MS))
        await mux.wake()  # rung as the read goes out: whichever reaches Redis first, it ends
        assert await asyncio.wait_for(read, PROMPT_S) == {}
    finally:
        await store.aclose()
        await raw.aclose()


class ScriptedReader(EventMux):
    """Answers reads from a queue of pages or errors."""

    def __init__(self) -> None:
        self.answers: asyncio.Queue[dict[str, list[Event] | YoiError] | YoiError] = asyncio.Queue()
        self.cursors: list[dict[str, str]] = []

    async def read(
        self, cursors: Mapping[str, str], limit: int, timeout_ms: int
    ) -> dict[str, list[Event] | YoiError]:
        self.cursors.append(dict(cursors))
        answer = await self.answers.get()
        if isinstance(answer, YoiError):
            raise answer
        return answer

    async def wake(self) -> None:
        return None


class MuxedRuntime:
    runtime_id = "scripted"

    def __init__(self, reader: ScriptedReader) -> None:
        self.reader = reader

    def event_mux(self) -> EventMux:
        return self.reader

    async def events(
        self, worker_id: str, *, after: str | None = None, limit: int = 100, wait_ms: int = 0
    ) -> EventPage:
        return EventPage(events=[], cursor="1-0")


async def test_redis_away_keeps_every_hub_and_reads_on_from_the_same_cursors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("gateway.mux.UNAVAILABLE_RETRY_S", 0.0)
    reader = ScriptedReader()
    runtime = cast(Runtime, MuxedRuntime(reader))
    hubs = Hubs(
        capacity=10,
        page_limit=10,
        on_events=lambda *_: None,
        on_overflow=lambda: None,
        multiplex=True,
    )
    a, b = hubs.subscription(), hubs.subscription()
    await hubs.join(runtime, "a", a)
    await hubs.join(runtime, "b", b)
    for _ in range(3):
        reader.answers.put_nowait(RuntimeUnavailable("redis went away"))
    page = [TextDelta(cursor="2-0", worker_id="a", ts=1.0, text="x")]
    reader.answers.put_nowait({"a": cast(list[Event], page)})
    assert [e.cursor for e in await asyncio.wait_for(a.take(), PROMPT_S)] == ["2-0"]
    assert not a.closed.is_set() and not b.closed.is_set()
    # Every read until the page's from the hubs' first cursors (b joined while one was out).
    assert all(c["a"] == "1-0" and c.get("b", "1-0") == "1-0" for c in reader.cursors[:4])
    await until(lambda: len(reader.cursors) == 5, "the next read")
    assert reader.cursors[4] == {"a": "2-0", "b": "1-0"}
    await hubs.aclose()


async def test_only_a_single_redis_server_has_an_event_mux(redis_cluster_url: str) -> None:
    """A multi-key `XREAD` is legal within one slot only: a cluster keeps the per-hub reader,
    as the embedded stores do."""
    settings = Settings(namespace="muxcheck")
    store = RedisStore.from_url(
        redis_cluster_url, namespace="muxcheck", runtime_id="fleet", settings=settings
    )
    try:
        assert store.event_mux() is None
    finally:
        await store.aclose()
    assert MemoryStore(settings).event_mux() is None


async def test_a_malformed_worker_id_or_cursor_is_that_streams_error_alone(
    redis_url: str, namespace: str
) -> None:
    settings = Settings(namespace=namespace)
    store = RedisStore.from_url(
        redis_url, namespace=namespace, runtime_id="fleet", settings=settings
    )
    try:
        mux = store.event_mux()
        assert mux is not None
        good = new_id()
        cursors = {"no{braces}": "0-0", good: "0-0", new_id(): "not a cursor"}
        pages = await asyncio.wait_for(mux.read(cursors, 10, LONG_WAIT_MS), PROMPT_S)
        assert good not in pages and len(pages) == 2
        assert all(isinstance(page, InvalidInput) for page in pages.values())
    finally:
        await store.aclose()
