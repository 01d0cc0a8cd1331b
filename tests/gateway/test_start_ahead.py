"""Runs started ahead of their take (`Store.take_ahead`), on a real Redis with an in-process
member: the answers are those of plain takes, event for event, and a start the take does not
confirm (a copy of the history behind the transcript, a cancel on the way, a first write that
reached Redis before its take) leaves no write of its own: each input runs once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from runtime_worker import _turn_runner
from runtime_worker.member import Member
from runtime_worker.store import _redis_wakeups
from runtime_worker.store._redis_host import RedisHostSide
from runtime_worker.store.base import TakenRun, WakeUp
from runtime_worker.store.redis import RedisStore
from shared.keys import Keys
from shared.settings import Settings
from tests.gateway.support import events_until, finished, fleet_settings_for, running_app

pytestmark = pytest.mark.redis

FLEET = "/api/runtimes/fleet"
WAIT_S = 10.0
VARYING = {"ts", "cursor", "run_id", "input_id", "worker_id", "duration_ms", "started_at"}


class Runs:
    """Each run the member's runner ran, by Worker and input text: whether it was started
    ahead (and kept)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started_ahead: dict[tuple[str, str], bool] = {}
        real = _turn_runner.TurnRunner._run

        async def recorded(
            runner: _turn_runner.TurnRunner,
            worker_id: str,
            hosted: Any,
            profile: Any,
            taken: TakenRun,
            started: Any,
        ) -> bool:
            self.started_ahead[worker_id, taken.item.text] = started is not None
            return await real(runner, worker_id, hosted, profile, taken, started)

        monkeypatch.setattr(_turn_runner.TurnRunner, "_run", recorded)


@pytest.fixture
def settings(namespace: str, redis_url: str) -> Settings:
    return fleet_settings_for(namespace, redis_url)


@pytest.fixture
async def fleet(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, RedisStore]]:
    async with running_app(settings) as (_, client):
        member = Member(settings)
        await member.start()
        try:
            assert isinstance(member.store, RedisStore)
            yield client, member.store
        finally:
            await member.stop()


async def create(client: httpx.AsyncClient) -> str:
    created = await client.post(f"{FLEET}/workers", json={"display_name": "a"})
    assert created.status_code == 201, created.text
    return str(created.json()["worker_id"])


async def exchange(client: httpx.AsyncClient, worker_id: str, text: str) -> list[dict[str, Any]]:
    """Send `text` and read the events of its run, up to its `run_finished`."""
    sent = await client.post(f"{FLEET}/workers/{worker_id}/inputs", json={"text": text})
    assert sent.status_code == 202, sent.text
    body = sent.json()
    path = f"{FLEET}/workers/{worker_id}/events"
    events = await events_until(client, path, body["cursor"], finished(body["input_id"]))
    return [e for e in events if e.get("input_id") == body["input_id"]]


def shape(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What two runs of the same text share: every field but ids and times, and the answer's
    text in one piece (how it is cut into deltas depends on timing)."""
    shared: list[dict[str, Any]] = []
    for event in events:
        kept = {k: v for k, v in event.items() if k not in VARYING}
        if kept["type"] == "text_delta" and shared and shared[-1]["type"] == "text_delta":
            shared[-1]["text"] += kept["text"]
        else:
            shared.append(kept)
    return shared


def answer_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["text"] for e in events if e["type"] == "text_delta")


async def test_answers_started_ahead_are_the_answers_of_plain_takes(
    fleet: tuple[httpx.AsyncClient, RedisStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, store = fleet
    runs = Runs(monkeypatch)
    ahead_worker, plain_worker = await create(client), await create(client)
    real_ahead = store.take_ahead

    def only_one_worker(worker_id: str, *args: Any) -> Any:
        return None if worker_id == plain_worker else real_ahead(worker_id, *args)

    monkeypatch.setattr(store, "take_ahead", only_one_worker)
    for n in range(6):
        text = f"question number {n}"
        ahead_run = await exchange(client, ahead_worker, text)
        plain_run = await exchange(client, plain_worker, text)
        assert answer_of(ahead_run) == f"You said: {text}"
        assert shape(ahead_run) == shape(plain_run)
        assert runs.started_ahead[ahead_worker, text] is (n > 0)  # the first take made the copy
        assert runs.started_ahead[plain_worker, text] is False
    transcripts = [
        [
            {k: v for k, v in entry.items() if k not in VARYING}
            for entry in (await client.get(f"{FLEET}/workers/{w}/transcript")).json()["entries"]
        ]
        for w in (ahead_worker, plain_worker)
    ]
    assert transcripts[0] == transcripts[1]


async def test_a_start_on_a_copy_behind_the_transcript_is_dropped_and_the_input_runs_once(
    fleet: tuple[httpx.AsyncClient, RedisStore],
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    redis_url: str,
) -> None:
    client, _ = fleet
    runs = Runs(monkeypatch)
    worker_id = await create(client)
    for n in range(2):
        await exchange(client, worker_id, f"warm {n}")
    assert runs.started_ahead[worker_id, "warm 1"]
    # An entry the member's copy never saw (as a failover that lost writes leaves one).
    transcript = Keys(settings.namespace, "fleet").worker(worker_id).transcript
    raw = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        ((_, newest),) = await raw.xrevrange(transcript, count=1)
        await raw.xadd(transcript, newest)
    finally:
        await raw.aclose()
    run = await exchange(client, worker_id, "after the gap")
    assert runs.started_ahead[worker_id, "after the gap"] is False
    assert [e["type"] for e in run].count("run_started") == 1
    assert answer_of(run) == "You said: after the gap"
    assert run[-1]["type"] == "run_finished" and run[-1]["result"] == "finished"
    await exchange(client, worker_id, "and on")
    assert runs.started_ahead[worker_id, "and on"]  # the take read it afresh: current again


async def test_a_first_write_ahead_of_its_take_starts_the_turn_again(
    fleet: tuple[httpx.AsyncClient, RedisStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first write of a run started ahead goes on a connection of its own: should it reach
    Redis before the take, it is refused although the take then confirms the run, and the turn
    runs again as a plain one (nothing of the first was written)."""
    client, store = fleet
    runs = Runs(monkeypatch)
    worker_id = await create(client)
    await exchange(client, worker_id, "warm")
    refused = asyncio.Event()
    real_take, real_append = store._take, store.append_events

    async def take_after_the_refusal(*args: Any, **kwargs: Any) -> TakenRun | None:
        if kwargs.get("ahead", (0, 0)) != (0, 0):
            await asyncio.wait_for(refused.wait(), WAIT_S)
        return await real_take(*args, **kwargs)

    async def append(*args: Any, **kwargs: Any) -> str:
        try:
            return await real_append(*args, **kwargs)
        except Exception:
            if kwargs.get("ahead"):
                refused.set()
            raise

    monkeypatch.setattr(store, "_take", take_after_the_refusal)
    monkeypatch.setattr(store, "append_events", append)
    run = await exchange(client, worker_id, "overtaken")
    assert refused.is_set()
    assert runs.started_ahead[worker_id, "overtaken"]  # confirmed by its take
    assert [e["type"] for e in run].count("run_started") == 1
    assert answer_of(run) == "You said: overtaken"
    assert run[-1]["result"] == "finished"


async def test_a_cancel_while_a_start_ahead_waits_for_its_take_ends_the_input_unrun(
    fleet: tuple[httpx.AsyncClient, RedisStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, store = fleet
    runs = Runs(monkeypatch)
    worker_id = await create(client)
    await exchange(client, worker_id, "warm")
    cancelled = asyncio.Event()
    held = asyncio.Event()
    real_take = store._take

    async def take_after_the_cancel(*args: Any, **kwargs: Any) -> TakenRun | None:
        if kwargs.get("ahead", (0, 0)) != (0, 0):
            held.set()
            await asyncio.wait_for(cancelled.wait(), WAIT_S)
        return await real_take(*args, **kwargs)

    monkeypatch.setattr(store, "_take", take_after_the_cancel)
    sent = await client.post(f"{FLEET}/workers/{worker_id}/inputs", json={"text": "cancel me"})
    assert sent.status_code == 202, sent.text
    body = sent.json()
    await asyncio.wait_for(held.wait(), WAIT_S)
    assert (await client.post(f"{FLEET}/workers/{worker_id}/cancel")).status_code == 200
    cancelled.set()
    path = f"{FLEET}/workers/{worker_id}/events"
    events = await events_until(client, path, body["cursor"], finished(body["input_id"]))
    run = [e for e in events if e.get("input_id") == body["input_id"]]
    assert runs.started_ahead[worker_id, "cancel me"] is False  # dropped: its take saw the cancel
    assert "text_delta" not in [e["type"] for e in run]
    assert run[-1]["type"] == "run_finished" and run[-1]["result"] == "cancelled"
    after = await exchange(client, worker_id, "next one")
    assert answer_of(after) == "You said: next one"


async def test_a_hint_of_an_input_a_take_got_first_starts_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hint held up until the input's run is over (the member's sweep found the input and
    ran it): the drain it wakes starts nothing ahead, where it would start a provider call
    for an answered input."""
    released, late = asyncio.Event(), asyncio.Event()
    real_listen = _redis_wakeups.WakeUps.listen

    async def listen(wakeups: _redis_wakeups.WakeUps, member_id: str) -> AsyncIterator[WakeUp]:
        async for wake in real_listen(wakeups, member_id):
            if wake.ahead is not None and wake.ahead.text == "late hint":
                await asyncio.wait_for(released.wait(), WAIT_S)
                late.set()
            yield wake

    started: list[str] = []
    real_ahead = RedisHostSide.take_ahead

    def take_ahead(store: RedisHostSide, *args: Any) -> Any:
        started.append(args[-1].text)
        return real_ahead(store, *args)

    monkeypatch.setattr(_redis_wakeups.WakeUps, "listen", listen)
    monkeypatch.setattr(RedisHostSide, "take_ahead", take_ahead)
    async with running_app(settings) as (_, client):
        member = Member(settings)
        await member.start()
        try:
            worker_id = await create(client)
            await exchange(client, worker_id, "warm")
            run = await exchange(client, worker_id, "late hint")  # the sweep's take ran it
            assert answer_of(run) == "You said: late hint"
            released.set()
            await asyncio.wait_for(late.wait(), WAIT_S)
            after = await exchange(client, worker_id, "after")
        finally:
            await member.stop()
    assert answer_of(after) == "You said: after"
    assert "late hint" not in started and started[-1] == "after"
