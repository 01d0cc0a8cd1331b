"""Every route of SPEC section 5 answers its success shape, in-process over ASGI."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shared.api import AllWorkers, CompanionDetail, RuntimeList, StreamTicket, WorkerList
from shared.events import EventPage
from shared.models import (
    CancelResult,
    InputAccepted,
    RuntimeDetail,
    TranscriptPage,
    WorkerDetail,
)
from tests.gateway.support import BI, create_worker, events_until, finished, open_stream, state


async def test_runtimes_list_and_detail(client: httpx.AsyncClient) -> None:
    listing = RuntimeList.model_validate((await client.get("/api/runtimes")).json())
    assert [(r.runtime_id, r.kind.value, r.status) for r in listing.runtimes] == [
        ("backend-internal", "embedded", "ok")
    ]
    response = await client.get(BI)
    assert response.status_code == 200
    detail = RuntimeDetail.model_validate(response.json())
    assert detail.diagnostics.kind.value == "embedded"
    assert detail.capabilities.event_stream
    assert detail.usage.runs == 0


async def test_worker_lifecycle_create_get_list_input_transcript_stop(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post(f"{BI}/workers", json={"display_name": "alice"})
    assert created.status_code == 201
    detail = WorkerDetail.model_validate(created.json())
    assert detail.display_ref == "alice@backend-internal"
    assert detail.kind.value == "embedded"
    worker = f"{BI}/workers/{detail.worker_id}"

    fetched = WorkerDetail.model_validate((await client.get(worker)).json())
    assert fetched.worker_id == detail.worker_id
    listing = WorkerList.model_validate((await client.get(f"{BI}/workers")).json())
    assert [w.worker_id for w in listing.workers] == [detail.worker_id]

    sent = await client.post(f"{worker}/inputs", json={"text": "hello gateway"})
    assert sent.status_code == 202
    accepted = InputAccepted.model_validate(sent.json())
    events = await events_until(
        client, f"{worker}/events", accepted.cursor, finished(accepted.input_id)
    )
    types = [e["type"] for e in events if e.get("input_id") == accepted.input_id]
    assert types[0] == "user_message" and types[-1] == "run_finished"
    assert types.index("run_started") < types.index("text_done") < types.index("run_finished")
    answer = "".join(e["text"] for e in events if e["type"] == "text_delta")
    assert answer == "You said: hello gateway"
    assert all("run_id" not in e or e["run_id"] is not None for e in events)  # no nulls

    page = TranscriptPage.model_validate((await client.get(f"{worker}/transcript")).json())
    assert [(e.role.value, e.text) for e in page.entries] == [
        ("user", "hello gateway"),
        ("assistant", "You said: hello gateway"),
    ]
    older = await client.get(f"{worker}/transcript", params={"limit": 1})
    first = TranscriptPage.model_validate(older.json())
    assert [e.role.value for e in first.entries] == ["assistant"]
    assert first.next_before is not None
    rest = await client.get(f"{worker}/transcript", params={"before": first.next_before})
    assert [e.role.value for e in TranscriptPage.model_validate(rest.json()).entries] == ["user"]

    stopped = await client.post(f"{worker}/stop")
    assert stopped.status_code == 200
    assert WorkerDetail.model_validate(stopped.json()).state.value == "stopped"


async def test_events_page_cursor_and_after_now(client: httpx.AsyncClient) -> None:
    worker = f"{BI}/workers/{await create_worker(client)}"
    page = EventPage.model_validate((await client.get(f"{worker}/events")).json())
    assert [e.type for e in page.events] == ["state_changed", "state_changed"]
    assert page.cursor == page.events[-1].cursor
    empty = await client.get(f"{worker}/events", params={"after": page.cursor})
    assert empty.json() == {"events": [], "cursor": page.cursor}
    now = (await client.get(f"{worker}/events", params={"after": "now"})).json()
    assert now == {"events": [], "cursor": page.cursor}
    limited = (await client.get(f"{worker}/events", params={"limit": 1})).json()
    assert len(limited["events"]) == 1 and limited["cursor"] == limited["events"][0]["cursor"]


async def test_long_poll_waits_for_the_next_event(client: httpx.AsyncClient) -> None:
    worker = f"{BI}/workers/{await create_worker(client)}"
    head = (await client.get(f"{worker}/events", params={"after": "now"})).json()["cursor"]
    poll = asyncio.create_task(
        client.get(f"{worker}/events", params={"after": head, "wait_ms": 10_000})
    )
    await client.post(f"{worker}/inputs", json={"text": "wake up"})
    page = (await asyncio.wait_for(poll, 10)).json()
    assert page["events"][0]["type"] == "user_message"


@pytest.mark.chaos
async def test_cancel_answers_the_state_and_is_idempotent(client: httpx.AsyncClient) -> None:
    worker_id = await create_worker(client)
    worker = f"{BI}/workers/{worker_id}"
    idle = CancelResult.model_validate((await client.post(f"{worker}/cancel")).json())
    assert (idle.worker_id, idle.cancelled) == (worker_id, False)
    sent = InputAccepted.model_validate(
        (await client.post(f"{worker}/inputs", json={"text": "/slow a b c d e f"})).json()
    )
    response = await client.post(f"{worker}/cancel")
    assert response.status_code == 200
    assert CancelResult.model_validate(response.json()).cancelled
    events = await events_until(client, f"{worker}/events", sent.cursor, finished(sent.input_id))
    assert [e["result"] for e in events if e["type"] == "run_finished"] == ["cancelled"]


async def test_same_input_id_twice_same_202_one_run(client: httpx.AsyncClient) -> None:
    worker = f"{BI}/workers/{await create_worker(client)}"
    body = {"text": "only once", "input_id": "client-key-1"}
    first, second = await asyncio.gather(
        client.post(f"{worker}/inputs", json=body), client.post(f"{worker}/inputs", json=body)
    )
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    events = await events_until(client, f"{worker}/events", None, finished("client-key-1"))
    again = await client.post(f"{worker}/inputs", json=body)  # after the run: still the same
    assert again.status_code == 202 and again.json() == first.json()
    events += (await client.get(f"{worker}/events", params={"after": events[-1]["cursor"]})).json()[
        "events"
    ]
    assert sum(1 for e in events if e["type"] == "run_started") == 1
    assert sum(1 for e in events if e["type"] == "user_message") == 1


async def test_all_workers_across_runtimes(client: httpx.AsyncClient) -> None:
    ids = {await create_worker(client, "one"), await create_worker(client, "two")}
    listing = AllWorkers.model_validate((await client.get("/api/workers")).json())
    assert {w.worker_id for w in listing.workers} == ids
    assert {w.kind.value for w in listing.workers} == {"embedded"}
    assert listing.unavailable == []


async def test_companion_routes(client: httpx.AsyncClient) -> None:
    first, second = await asyncio.gather(client.get("/api/companion"), client.get("/api/companion"))
    assert first.status_code == second.status_code == 200
    companion = CompanionDetail.model_validate(first.json())
    assert companion.worker_id == second.json()["worker_id"]  # concurrent first use: one
    assert companion.display_ref == "companion@backend-internal"
    assert (companion.profile, companion.workspace) == ("companion", "test-workspace")

    sent = await client.post("/api/companion/messages", json={"text": "hi companion"})
    assert sent.status_code == 202
    accepted = InputAccepted.model_validate(sent.json())
    events = await events_until(
        client, "/api/companion/events", accepted.cursor, finished(accepted.input_id)
    )
    assert "".join(e["text"] for e in events if e["type"] == "text_delta") == (
        "You said: hi companion"
    )
    transcript = TranscriptPage.model_validate(
        (await client.get("/api/companion/transcript")).json()
    )
    assert [e.text for e in transcript.entries] == ["hi companion", "You said: hi companion"]
    cancel = CancelResult.model_validate((await client.post("/api/companion/cancel")).json())
    assert cancel.worker_id == companion.worker_id and not cancel.cancelled
    listing = (await client.get(f"{BI}/workers")).json()["workers"]
    assert [w["display_name"] for w in listing] == ["companion"]


async def test_companion_is_recreated_after_a_stop(client: httpx.AsyncClient) -> None:
    old = (await client.get("/api/companion")).json()["worker_id"]
    await client.post(f"{BI}/workers/{old}/stop")
    new = (await client.get("/api/companion")).json()
    assert new["worker_id"] != old and new["state"] in ("pending", "idle")


async def test_companion_stream(app: FastAPI, client: httpx.AsyncClient) -> None:
    async with open_stream(app, "/api/companion/events/stream?after=now") as stream:
        assert stream.status == 200
        sent = (await client.post("/api/companion/messages", json={"text": "streamed"})).json()
        messages = await stream.read_until(lambda ms: any(m.event == "run_finished" for m in ms))
    assert {m.json()["input_id"] for m in messages if m.event != "state_changed"} == {
        sent["input_id"]
    }


async def test_stream_ticket_route(client: httpx.AsyncClient) -> None:
    worker_id = await create_worker(client)
    response = await client.post(f"{BI}/workers/{worker_id}/stream-ticket")
    ticket = StreamTicket.model_validate(response.json())
    assert ticket.worker_id == worker_id and ticket.expires_in == 60
    companion = StreamTicket.model_validate(
        (await client.post("/api/companion/stream-ticket")).json()
    )
    assert companion.runtime_id == "backend-internal"


async def test_health_ready_metrics_docs_and_console(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["runtimes"][0]["ready"]
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200 and "yoi_http_requests_total" in metrics.text
    assert (await client.get("/docs")).status_code == 200
    page = await client.get("/")
    assert page.status_code == 200 and "<html" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert (await client.get("/static/favicon.svg")).status_code == 200


async def test_openapi_declares_the_error_envelope_on_every_route(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            errors = [s for s in operation["responses"] if s[0] in "45"]
            assert errors, f"{method} {path} declares no error"
            for status in errors:
                content = operation["responses"][status]["content"]["application/json"]
                # `/v1` (the OpenAI-compatible facade) answers in OpenAI's error shape.
                envelopes = (
                    ("OpenAIError",) if path.startswith("/v1/") else ("ErrorEnvelope", "NotReady")
                )
                assert content["schema"]["$ref"].split("/")[-1] in envelopes
    api = [p for p in schema["paths"] if p.startswith("/api/")]
    for path in api:
        for operation in schema["paths"][path].values():
            assert "401" in operation["responses"], path


async def test_a_long_poll_is_released_as_soon_as_its_client_leaves(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = f"{BI}/workers/{await create_worker(client)}"
    gateway = state(app)
    runtime = gateway.runtimes().embedded
    waiting = asyncio.Event()
    real_events = runtime.events

    async def watched(worker_id: str, **kwargs: Any) -> EventPage:
        waiting.set()
        return await real_events(worker_id, **kwargs)

    monkeypatch.setattr(runtime, "events", watched)
    poll = await open_stream(app, f"{worker}/events?after=now&wait_ms=60000").open(
        wait_for_headers=False
    )
    await asyncio.wait_for(waiting.wait(), 10)
    assert not poll.answered()  # the long poll holds its store wait
    loop = asyncio.get_running_loop()
    started = loop.time()
    await poll.close()
    assert loop.time() - started < 2, "the wait outlived its client"
    assert poll.status == 499
