"""Every method of `Client` and `AsyncClient` against a real gateway: the `shared` models come
back, the token is read from the environment, and send_and_stream follows one answer."""

from __future__ import annotations

import pytest

from gateway.client import AsyncClient, Client, InvalidInput
from shared.api import AllWorkers, CompanionDetail, Health, Readiness, StreamTicket
from shared.events import EventPage, RunFinished
from shared.models import (
    CancelResult,
    CreateWorker,
    InputAccepted,
    RuntimeDetail,
    RuntimeKind,
    RuntimeSummary,
    TranscriptPage,
    WorkerDetail,
    WorkerState,
    WorkerSummary,
)
from tests.sdk.conftest import TOKEN, Gateway

pytestmark = pytest.mark.slow


@pytest.fixture
def client(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> Client:
    monkeypatch.setenv("YOI_GATEWAY", gateway.url)  # like the CLI: both from the environment
    monkeypatch.setenv("YOI_API_TOKEN", TOKEN)
    return Client()


def test_runtimes_and_workers(client: Client) -> None:
    with client:
        runtimes = client.list_runtimes()
        assert all(isinstance(r, RuntimeSummary) for r in runtimes)
        assert {r.runtime_id: r.kind for r in runtimes} == {
            "backend-internal": RuntimeKind.EMBEDDED,
            "fleet": RuntimeKind.FLEET,
        }
        detail = client.get_runtime("fleet")
        assert isinstance(detail, RuntimeDetail) and detail.capabilities.send_input

        created = client.create_worker("fleet", "alice")
        assert isinstance(created, WorkerDetail) and created.display_ref == "alice@fleet"
        listed = client.list_workers("fleet")
        assert all(isinstance(w, WorkerSummary) for w in listed)
        assert created.worker_id in {w.worker_id for w in listed}
        everything = client.all_workers()
        assert isinstance(everything, AllWorkers) and everything.unavailable == []
        assert created.worker_id in {w.worker_id for w in everything.workers}
        assert client.get_worker("fleet", created.worker_id).worker_id == created.worker_id

        stopped = client.stop("fleet", created.worker_id)
        assert stopped.state in (WorkerState.STOPPING, WorkerState.STOPPED)

        batch = client.create_workers(
            "fleet", [{"display_name": "b0"}, CreateWorker(display_name="b1")]
        )
        assert [(w.display_name, w.runtime_id) for w in batch] == [("b0", "fleet"), ("b1", "fleet")]
        assert all(isinstance(w, WorkerDetail) for w in batch)
        with pytest.raises(InvalidInput, match=r"workers\.1"):  # validated before it is sent
            client.create_workers("fleet", [{"display_name": "ok"}, {"display_name": ""}])


def test_send_events_transcript_and_cancel(client: Client) -> None:
    with client:
        worker = client.create_worker("fleet", "bob")
        accepted = client.send("fleet", worker.worker_id, "hello there", input_id="bob-1")
        assert isinstance(accepted, InputAccepted) and accepted.input_id == "bob-1"
        again = client.send("fleet", worker.worker_id, "hello there", input_id="bob-1")
        assert again == accepted  # the same input_id: the same answer, no second run

        page = client.events("fleet", worker.worker_id, after=accepted.cursor, wait_ms=5000)
        assert isinstance(page, EventPage) and page.events
        finished: list[RunFinished] = []
        cursor = accepted.cursor
        while not finished:
            page = client.events("fleet", worker.worker_id, after=cursor, wait_ms=5000)
            finished += [e for e in page.events if isinstance(e, RunFinished)]
            cursor = page.cursor
        assert [e.input_id for e in finished] == ["bob-1"]

        transcript = client.transcript("fleet", worker.worker_id, limit=10)
        assert isinstance(transcript, TranscriptPage)
        assert [e.role.value for e in transcript.entries] == ["user", "assistant"]
        assert "hello there" in transcript.entries[1].text

        outcome = client.cancel("fleet", worker.worker_id)
        assert isinstance(outcome, CancelResult) and outcome.cancelled is False  # nothing ran

        ticket = client.stream_ticket("fleet", worker.worker_id)
        assert isinstance(ticket, StreamTicket) and ticket.worker_id == worker.worker_id


def test_stream_and_send_and_stream(client: Client) -> None:
    with client:
        worker = client.create_worker("fleet", "carol")
        answer_stream = client.send_and_stream("fleet", worker.worker_id, "one two three")
        events = list(answer_stream)
        assert events[0].type == "user_message"
        assert events[-1].type == "run_finished"
        assert {e.input_id for e in events} == {answer_stream.accepted.input_id}
        answer = answer_stream.answer
        assert answer.done and answer.attempt == 1 and "one two three" in answer.text
        assert answer.finished is not None and answer.finished.result.value == "finished"

        # The raw stream from the oldest event: the Worker's every event (state changes too).
        stream = client.stream("fleet", worker.worker_id)
        seen = []
        for event in stream:
            seen.append(event)
            if event.type == "run_finished":
                break
        stream.close()
        assert [e.cursor for e in seen if e.input_id is not None] == [e.cursor for e in events]
        assert any(e.type == "state_changed" for e in seen)
        waited = client.send_and_stream("fleet", worker.worker_id, "four").wait()
        assert "four" in waited.text


def test_the_companion(client: Client) -> None:
    with client:
        companion = client.companion()
        assert isinstance(companion, CompanionDetail)
        assert companion.display_ref == "companion@backend-internal"
        accepted = client.companion_send("hi companion")
        stream = client.companion_stream(after=accepted.cursor)
        for event in stream:
            if event.type == "run_finished":
                break
        stream.close()
        page = client.companion_events(after=accepted.cursor)
        assert page.events[0].type == "user_message"
        texts = [e.text for e in client.companion_transcript(limit=5).entries]
        assert any("hi companion" in text for text in texts)
        assert client.companion_cancel().cancelled is False
        assert client.companion_stream_ticket().worker_id == companion.worker_id
        # The Companion is an ordinary Worker of backend-internal too.
        assert client.get_worker("backend-internal", companion.worker_id).worker_id == (
            companion.worker_id
        )


def test_operations(client: Client) -> None:
    with client:
        assert client.health() == Health()
        ready = client.ready()
        assert isinstance(ready, Readiness) and all(r.ready for r in ready.runtimes)
        assert "yoi_" in client.metrics()


async def test_the_async_client_has_every_method(gateway: Gateway) -> None:
    async with AsyncClient(gateway.url, TOKEN) as client:
        assert {r.runtime_id for r in await client.list_runtimes()} == {
            "backend-internal",
            "fleet",
        }
        assert (await client.get_runtime("fleet")).runtime_id == "fleet"
        worker = await client.create_worker("fleet", "dave")
        (made,) = await client.create_workers("backend-internal", [{"display_name": "erin"}])
        assert (made.display_name, made.state) == ("erin", WorkerState.IDLE)
        assert worker.worker_id in {w.worker_id for w in await client.list_workers("fleet")}
        assert worker.worker_id in {w.worker_id for w in (await client.all_workers()).workers}
        assert (await client.get_worker("fleet", worker.worker_id)).display_name == "dave"

        answer_stream = await client.send_and_stream("fleet", worker.worker_id, "async hello")
        events = [event async for event in answer_stream]
        assert events[-1].type == "run_finished"
        assert "async hello" in answer_stream.answer.text
        accepted = await client.send("fleet", worker.worker_id, "second", input_id="d-2")
        stream = client.stream("fleet", worker.worker_id, after=accepted.cursor)
        async for event in stream:
            if event.type == "run_finished":
                break
        await stream.aclose()
        page = await client.events("fleet", worker.worker_id, after=accepted.cursor)
        assert page.events[0].input_id == "d-2"
        assert len((await client.transcript("fleet", worker.worker_id)).entries) == 4
        assert (await client.cancel("fleet", worker.worker_id)).cancelled is False
        assert (await client.stream_ticket("fleet", worker.worker_id)).runtime_id == "fleet"
        assert (await client.stop("fleet", worker.worker_id)).worker_id == worker.worker_id

        companion = await client.companion()
        accepted = await client.companion_send("async companion")
        companion_stream = client.companion_stream(after=accepted.cursor)
        async for event in companion_stream:
            if event.type == "run_finished":
                break
        await companion_stream.aclose()
        assert (await client.companion_events(after=accepted.cursor)).events
        assert (await client.companion_transcript()).entries
        assert (await client.companion_cancel()).worker_id == companion.worker_id
        assert (await client.companion_stream_ticket()).worker_id == companion.worker_id
        assert await client.health() == Health()
        assert (await client.ready()).status == "ready"
        assert "yoi_" in await client.metrics()
