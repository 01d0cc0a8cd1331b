"""The event stream through the app: frames, resume, heartbeats, disconnects, slow clients."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.sse import frame, frames
from shared.events import Event, RunStarted, TextDelta
from shared.settings import Settings
from tests.gateway.sse_parser import Message
from tests.gateway.support import (
    BI,
    BlockingReads,
    create_worker,
    event_payloads,
    events_until,
    finished,
    open_stream,
    ran,
    running_app,
    settings_for,
    state,
)


async def truth(
    client: httpx.AsyncClient, worker: str, after: str | None = None
) -> list[dict[str, Any]]:
    params = {"after": after} if after else {}
    return list((await client.get(f"{worker}/events", params=params)).json()["events"])


async def test_frames_are_id_event_data_and_match_the_log(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    worker_id = await create_worker(client)
    worker = f"{BI}/workers/{worker_id}"
    async with open_stream(app, f"{worker}/events/stream") as stream:
        assert stream.status == 200
        sent = (await client.post(f"{worker}/inputs", json={"text": "two\nlines"})).json()
        messages = await stream.read_until(ran(sent["input_id"]))
    log = await truth(client, worker)
    assert [m.json() for m in messages] == log[: len(messages)]
    assert [m.last_event_id for m in messages] == [e["cursor"] for e in log[: len(messages)]]
    assert [m.event for m in messages] == [e["type"] for e in log[: len(messages)]]
    assert all(m.block_had_id for m in messages)
    blocks = stream.body.decode().split("\n\n")
    first = blocks[0].split("\n")
    assert first == [
        f"id: {log[0]['cursor']}",
        "event: state_changed",
        f"data: {json.dumps(log[0], separators=(',', ':'))}",
    ]
    assert all("null" not in m.data for m in messages)  # exclude_none
    assert stream.scope["path"].endswith("/events/stream")


async def test_resume_from_last_event_id_over_after_and_after_now(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    worker = f"{BI}/workers/{await create_worker(client)}"
    sent = (await client.post(f"{worker}/inputs", json={"text": "first"})).json()
    await events_until(client, f"{worker}/events", None, finished(sent["input_id"]))
    log = await truth(client, worker)
    middle = log[3]["cursor"]
    # Last-Event-ID (a browser's automatic resume) wins over the URL's original `after`.
    url = f"{worker}/events/stream?after={log[0]['cursor']}"
    async with open_stream(app, url, {"Last-Event-ID": middle}) as stream:
        messages = await stream.read_until(lambda ms: len(ms) >= len(log) - 4)
    assert [m.json() for m in messages] == log[4:]

    async with open_stream(app, f"{worker}/events/stream?after=now") as stream:
        second = (await client.post(f"{worker}/inputs", json={"text": "second"})).json()
        messages = await stream.read_until(ran(second["input_id"]))
    assert messages[0].json()["input_id"] == second["input_id"]
    later = await truth(client, worker, log[-1]["cursor"])
    assert [m.json() for m in messages] == later[: len(messages)]


async def test_heartbeats_are_comments_without_id(namespace: str) -> None:
    async with running_app(settings_for(namespace, sse_heartbeat_s=0.05)) as (app, client):
        worker = f"{BI}/workers/{await create_worker(client)}"
        async with open_stream(app, f"{worker}/events/stream?after=now") as stream:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while len(stream.parser.comments) < 3:
                assert loop.time() < deadline, "no heartbeat arrived"
                await stream.next_messages()
        assert set(stream.parser.comments) == {"ping"}
        assert stream.parser.comment_blocks_with_id == 0
        assert stream.parser.messages == []
        assert stream.parser.last_event_id == ""


async def test_disconnect_frees_the_connection_and_the_reader_at_once(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    gateway = state(app)
    worker = f"{BI}/workers/{await create_worker(client)}"
    stream = await open_stream(app, f"{worker}/events/stream").open()
    await stream.read_until(lambda ms: len(ms) >= 2)
    assert len(gateway.hubs) == 1 and gateway.hubs.subscribers() == 1
    assert gateway.metrics.sse_clients._value.get() == 1
    tasks = list(gateway.hubs._tasks.values())
    await stream.close()
    # No waiting: the app returned, so everything the connection held is gone already.
    assert len(gateway.hubs) == 0 and gateway.hubs.subscribers() == 0
    assert gateway.metrics.sse_clients._value.get() == 0
    assert all(task.cancelling() or task.done() for task in tasks)
    await asyncio.gather(*tasks, return_exceptions=True)
    assert all(task.cancelled() for task in tasks)


async def test_a_client_too_slow_is_disconnected_and_resumes_without_loss(namespace: str) -> None:
    settings = settings_for(namespace, sse_buffer_events=10)
    async with running_app(settings) as (app, client):
        gateway = state(app)
        worker = f"{BI}/workers/{await create_worker(client)}"
        stream = await open_stream(app, f"{worker}/events/stream").open()
        got = await stream.read_until(lambda ms: len(ms) >= 2)
        stream.reading.clear()  # the client stops reading: every send now blocks
        for index in range(4):
            body = {"text": f"flood {index} with several words", "strategy": "enqueue"}
            await client.post(f"{worker}/inputs", json=body)
        last = (
            await client.post(f"{worker}/inputs", json={"text": "end", "strategy": "enqueue"})
        ).json()
        await asyncio.wait_for(stream.ended.wait(), 10)  # cut while the send was stuck
        await stream.close()
        assert gateway.metrics.sse_slow_disconnects._value.get() == 1
        assert len(gateway.hubs) == 0 and gateway.metrics.sse_clients._value.get() == 0
        received = stream.parser.messages
        assert len(received) >= len(got)
        resume_from = received[-1].last_event_id
        async with open_stream(
            app, f"{worker}/events/stream", {"Last-Event-ID": resume_from}
        ) as again:
            rest = await again.read_until(ran(last["input_id"]))
        combined = [m.json() for m in received] + [m.json() for m in rest]
        log = await truth(client, worker)
        assert combined == log[: len(combined)]


async def test_one_reader_fans_out_to_a_thousand_subscribers(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = state(app)
    runtime = gateway.runtimes().embedded
    worker_id = await create_worker(client)
    worker = f"{BI}/workers/{worker_id}"
    reads = BlockingReads(runtime, monkeypatch)
    streams = [open_stream(app, f"{worker}/events/stream") for _ in range(1000)]
    await asyncio.gather(*(s.open() for s in streams))
    await asyncio.gather(*(s.read_until(lambda ms: len(ms) >= 2) for s in streams))
    assert len(gateway.hubs) == 1 and gateway.hubs.subscribers() == 1000
    sent = (await client.post(f"{worker}/inputs", json={"text": "to everyone at once"})).json()
    await asyncio.gather(*(s.read_until(ran(sent["input_id"])) for s in streams))
    log = await truth(client, worker)
    for stream in streams:
        assert [m.json() for m in stream.parser.messages] == log[: len(stream.parser.messages)]
    assert reads.most == 1  # one store reader for the worker, whatever the audience
    await asyncio.gather(*(s.close() for s in streams))
    assert len(gateway.hubs) == 0 and gateway.metrics.sse_clients._value.get() == 0


async def test_joining_mid_run_has_no_gap_and_no_repeat(namespace: str) -> None:
    async with running_app(settings_for(namespace, echo_delay_ms=2)) as (app, client):
        worker = f"{BI}/workers/{await create_worker(client)}"
        words = " ".join(f"w{i}" for i in range(60))
        sent = (await client.post(f"{worker}/inputs", json={"text": words})).json()
        streams = []
        cursor = sent["cursor"]
        for _ in range(10):  # join at successive moments of the run, each from the latest cursor
            page = await client.get(f"{worker}/events", params={"after": cursor, "wait_ms": 1000})
            cursor = page.json()["cursor"]
            stream = await open_stream(app, f"{worker}/events/stream?after={cursor}").open()
            streams.append((cursor, stream))
        await events_until(client, f"{worker}/events", sent["cursor"], finished(sent["input_id"]))
        cursors = [e["cursor"] for e in await truth(client, worker)]
        assert len({after for after, _ in streams}) > 3, "the joins did not spread over the run"
        for after, stream in streams:
            if after != cursors[-1]:
                await stream.read_until(
                    lambda ms: ms[-1].last_event_id == cursors[-1] if ms else False
                )
            got = [m.last_event_id for m in stream.parser.messages]
            start = cursors.index(after) + 1
            assert got == cursors[start:], "a gap or a repeat"
            await stream.close()


def test_parser_message_helpers() -> None:
    message = Message(event="x", data='{"a": 1}', last_event_id="1-0", block_had_id=True)
    assert event_payloads([message]) == [{"a": 1}]
    assert isinstance(Settings, type)


def test_written_out_frames_are_the_encoders_bytes() -> None:
    """`frames` writes the SSE text itself: byte for byte what sse-starlette's encoder makes,
    line breaks in a text included (JSON escapes them), and the encoder's way without an id."""
    worker_id = "01a236d0-e7be-7a48-96be-b6b6f12962b1"
    events: list[Event] = [
        TextDelta(worker_id=worker_id, ts=1.5, run_id="r", input_id="i", text='a\nb\r"c'),
        RunStarted(worker_id=worker_id, ts=2.0, run_id="r", input_id="i", attempt=1),
    ]
    stamped = [e.model_copy(update={"cursor": f"17-{n}"}) for n, e in enumerate(events)]
    for batch in (stamped, events):  # with cursors, and without (the encoder's own path)
        assert frames(batch) == b"".join(frame(event).encode() for event in batch)
