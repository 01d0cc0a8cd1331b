"""Store-level edges as HTTP shows them, on the embedded runtime and a fleet (Redis) runtime
alike (issue 10): `before=0` on transcripts, a cursor ahead of the stream's end, and an
`input_id` reused with another text."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.gateway.support import BI, open_stream, running_app, settings_for

FLEET = "/api/runtimes/fleet"


@pytest.fixture(params=["embedded", "fleet"])
async def runtime_app(
    request: pytest.FixtureRequest, namespace: str, redis_url: str
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, str]]:
    """The gateway with a fleet runtime configured, and the base path of the runtime under
    test. Fleet Workers need no member here: every edge is answered by the store."""
    settings = settings_for(
        namespace, redis_url=redis_url, fleets=["fleet"], runtime_id="fleet", admission=False
    )
    async with running_app(settings) as (app, client):
        yield app, client, BI if request.param == "embedded" else FLEET


async def _worker(client: httpx.AsyncClient, base: str) -> str:
    response = await client.post(f"{base}/workers", json={"display_name": "edges"})
    assert response.status_code == 201, response.text
    return str(response.json()["worker_id"])


async def test_transcript_before_zero_is_an_empty_page(
    runtime_app: tuple[FastAPI, httpx.AsyncClient, str],
) -> None:
    _, client, base = runtime_app
    worker = f"{base}/workers/{await _worker(client, base)}"
    sent = await client.post(f"{worker}/inputs", json={"text": "hello", "strategy": "enqueue"})
    assert sent.status_code == 202, sent.text
    for before in ("0", "0-0"):
        page = await client.get(f"{worker}/transcript", params={"before": before})
        assert page.status_code == 200, page.text
        assert page.json() == {"entries": [], "next_before": None}


async def test_a_cursor_ahead_of_the_end_is_invalid_input(
    runtime_app: tuple[FastAPI, httpx.AsyncClient, str],
) -> None:
    app, client, base = runtime_app
    worker = f"{base}/workers/{await _worker(client, base)}"
    cursor = (await client.get(worker)).json()["cursor"]
    ms, _, seq = cursor.partition("-")
    ahead = f"{ms}-{int(seq or 0) + 1}"
    for params in ({"after": ahead}, {"after": ahead, "wait_ms": "200"}):
        response = await client.get(f"{worker}/events", params=params)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_input"
    async with open_stream(app, f"{worker}/events/stream?after={ahead}") as stream:
        await stream.drain_to_end()
        assert stream.status == 422
        assert b'"code":"invalid_input"' in stream.body
    current = await client.get(f"{worker}/events", params={"after": cursor})
    assert current.status_code == 200 and current.json() == {"events": [], "cursor": cursor}


async def test_an_input_id_reused_with_another_text_is_a_conflict(
    runtime_app: tuple[FastAPI, httpx.AsyncClient, str],
) -> None:
    _, client, base = runtime_app
    worker = f"{base}/workers/{await _worker(client, base)}"
    body = {"text": "first text", "input_id": "client-key-7", "strategy": "enqueue"}
    first = await client.post(f"{worker}/inputs", json=body)
    assert first.status_code == 202, first.text
    clash = await client.post(f"{worker}/inputs", json={**body, "text": "second text"})
    assert clash.status_code == 409, clash.text
    error = clash.json()["error"]
    assert error["code"] == "input_id_conflict" and error["retryable"] is False
    again = await client.post(f"{worker}/inputs", json=body)
    assert again.status_code == 202 and again.json() == first.json()
    events = (await client.get(f"{worker}/events")).json()["events"]
    texts = [event["text"] for event in events if event["type"] == "user_message"]
    assert texts == ["first text"]
