"""`gateway.fastpath`: the inputs, long-poll and create routes answered without FastAPI's
machinery must answer byte for byte what the routes answer, and hand every other case to them.

Two apps share one gateway state (one embedded runtime): `fast` has the fast path, `routed` the
same middleware stack without it. A request that changes nothing (a read, a repeated input id, a
refused input) goes to both and must get the same status, headers and body."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import fastapi.routing
import httpx
import pytest
from fastapi import FastAPI

from gateway.app import create_app
from gateway.fastpath import HotRoutes
from gateway.routes import events, workers
from shared.settings import Settings
from tests.gateway.support import BI, create_worker, events_until, finished, state

Clients = tuple[httpx.AsyncClient, httpx.AsyncClient]


@pytest.fixture
async def clients(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> AsyncIterator[Clients]:
    routed = create_app(settings)
    routed.user_middleware = [m for m in routed.user_middleware if m.cls is not HotRoutes]
    routed.state.gateway = state(app)  # the same runtimes, tickets and metrics
    transport = httpx.ASGITransport(app=routed)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as other:
        yield client, other


async def same(clients: Clients, method: str, path: str, **kwargs: Any) -> httpx.Response:
    fast, routed = clients
    got = await fast.request(method, path, **kwargs)
    want = await routed.request(method, path, **kwargs)
    assert (got.status_code, got.headers.items(), got.content) == (
        want.status_code,
        want.headers.items(),
        want.content,
    )
    return got


@pytest.mark.chaos
async def test_inputs_answer_as_the_route(clients: Clients) -> None:
    worker = f"{BI}/workers/{await create_worker(clients[0])}"
    body = {"text": "/slow hello", "input_id": "fast-1"}
    first = await clients[0].post(f"{worker}/inputs", json=body)
    assert first.status_code == 202
    await same(clients, "POST", f"{worker}/inputs", json=body)  # the same input id again
    await same(clients, "POST", f"{worker}/inputs", json={"text": "x", "strategy": "reject"})
    deep = b'{"text": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    for bad in (
        {"json": {"text": ""}},
        {"json": {"text": "x", "extra": 1}},
        {"json": {"text": "x", "strategy": "sometimes"}},
        {"json": ["x"]},
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        {"content": b'{"text": "x"}', "headers": {"content-type": "text/plain"}},
        {"content": b"", "headers": {"content-type": "application/json"}},
        {"content": deep, "headers": {"content-type": "application/json"}},
    ):
        assert (await same(clients, "POST", f"{worker}/inputs", **bad)).status_code == 422
    missing = f"{BI}/workers/01890a5d-ac96-774b-bcce-b302099a8057/inputs"
    assert (await same(clients, "POST", missing, json=body)).status_code == 404
    assert (await same(clients, "POST", f"{BI}/workers/nope/inputs", json=body)).status_code == 404
    unknown = "/api/runtimes/nope/workers/x/inputs"
    assert (await same(clients, "POST", unknown, json=body)).status_code == 404
    await events_until(clients[0], f"{worker}/events", first.json()["cursor"], finished("fast-1"))


async def test_long_polls_answer_as_the_route(clients: Clients) -> None:
    worker_id = await create_worker(clients[0])
    worker = f"{BI}/workers/{worker_id}"
    body = {"text": "hello", "input_id": "lp"}
    sent = (await clients[0].post(f"{worker}/inputs", json=body)).json()
    events = await events_until(clients[0], f"{worker}/events", sent["cursor"], finished("lp"))
    last = events[-1]["cursor"]
    for query in (
        "",
        f"?after={sent['cursor']}",
        f"?after={sent['cursor']}&limit=2",
        f"?after={sent['cursor']}&limit=1000&wait_ms=0",
        f"?after={sent['cursor']}&wait_ms=1",
        f"?after={last}&wait_ms=5",  # nothing new: waits, then an empty page
        "?after=now",
        "?after=0&unknown=1",
        "?after=0&after=0",
        "?after=",
        "?after=nope",
        "?limit=0",
        "?limit=1001",
        "?limit=+3",
        "?limit=x",
        "?wait_ms=60001",
        f"?after={'9' * 65}",
    ):
        await same(clients, "GET", f"{worker}/events{query}")
    await same(clients, "GET", f"{BI}/workers/01890a5d-ac96-774b-bcce-b302099a8057/events")
    await same(clients, "GET", f"{BI}/workers/nope/events")


async def test_the_fast_path_answers_and_is_counted_as_the_route(
    clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = f"{BI}/workers/{await create_worker(clients[0])}"

    async def not_the_route(*args: object, **kwargs: object) -> None:
        raise AssertionError("the route answered a request the fast path takes")

    monkeypatch.setattr(workers, "send_input", not_the_route)
    monkeypatch.setattr(events, "long_poll", not_the_route)
    sent = await clients[0].post(f"{worker}/inputs", json={"text": "hi", "input_id": "counted"})
    assert sent.status_code == 202
    page = await clients[0].get(f"{worker}/events", params={"after": sent.json()["cursor"]})
    assert page.status_code == 200
    metrics = (await clients[0].get("/metrics")).text
    template = "/api/runtimes/{runtime_id}/workers/{worker_id}/"
    for route, method, status in (("inputs", "POST", "202"), ("events", "GET", "200")):
        labels = f'method="{method}",route="{template}{route}",status="{status}"'
        assert "yoi_http_requests_total{" + labels + "} 1.0" in metrics


VARYING = {"worker_id", "display_ref", "display_name", "created_at", "cursor"}


async def test_a_create_answers_as_the_route(clients: Clients) -> None:
    fast, routed = clients
    answers = [
        await c.post(f"{BI}/workers", json={"display_name": name, "profile": "assistant"})
        for c, name in ((fast, "fast"), (routed, "routed"))
    ]
    got, want = (answer.json() for answer in answers)
    assert [a.status_code for a in answers] == [201, 201]
    assert answers[0].headers["content-type"] == answers[1].headers["content-type"]
    assert {k: v for k, v in got.items() if k not in VARYING} == {
        k: v for k, v in want.items() if k not in VARYING
    }
    assert got.keys() == want.keys() and got["display_ref"] == "fast@backend-internal"
    detail = await fast.get(f"{BI}/workers/{got['worker_id']}")
    assert detail.json()["display_name"] == "fast"


async def test_refused_creates_answer_as_the_route(clients: Clients) -> None:
    write = [{"path": "/repo/src", "mode": "write"}]
    await create_worker(clients[0], "writer", scope=write)
    overlapping = {"display_name": "other", "scope": [{"path": "/repo", "mode": "write"}]}
    assert (await same(clients, "POST", f"{BI}/workers", json=overlapping)).status_code == 409
    for bad in (
        {"json": {"display_name": ""}},
        {"json": {"display_name": "x", "extra": 1}},
        {"json": {"display_name": "x", "profile": "Not A Profile"}},
        {"json": ["x"]},
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        {"content": b'{"display_name": "x"}', "headers": {"content-type": "text/plain"}},
        {"content": b"", "headers": {"content-type": "application/json"}},
        {"content": b'{"display_name": ' + b"[" * 1000 + b"]" * 1000 + b"}"},
    ):
        assert (await same(clients, "POST", f"{BI}/workers", **bad)).status_code == 422
    unknown_profile = {"display_name": "x", "profile": "nope"}
    assert (await same(clients, "POST", f"{BI}/workers", json=unknown_profile)).status_code == 422
    missing_parent = {"display_name": "x", "delegated_from": "01890a5d-ac96-774b-bcce-b302099a8057"}
    assert (await same(clients, "POST", f"{BI}/workers", json=missing_parent)).status_code == 404
    unknown = "/api/runtimes/nope/workers"
    assert (await same(clients, "POST", unknown, json={"display_name": "x"})).status_code == 404


async def test_a_fast_create_is_counted_as_the_route(
    clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def not_a_route(*args: object, **kwargs: object) -> None:
        raise AssertionError("FastAPI answered a request the fast path takes")

    with monkeypatch.context() as patched:
        patched.setattr(fastapi.routing, "run_endpoint_function", not_a_route)
        created = await clients[0].post(f"{BI}/workers", json={"display_name": "counted"})
    assert created.status_code == 201
    metrics = (await clients[0].get("/metrics")).text
    labels = 'method="POST",route="/api/runtimes/{runtime_id}/workers",status="201"'
    assert "yoi_http_requests_total{" + labels + "} 1.0" in metrics
