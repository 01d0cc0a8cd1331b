"""`gateway.fastcreate`: the create route answered without FastAPI's machinery must answer what
the route answers, and hand every other case to the route.

Two apps share one gateway state (one embedded runtime): `fast` has the fast path, `routed` the
same middleware stack without it. A create that is refused changes nothing and must get the same
status, headers and body from both; a create that succeeds must answer the same shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import fastapi.routing
import httpx
import pytest
from fastapi import FastAPI

from gateway.app import create_app
from gateway.fastcreate import CreateFastPath
from shared.settings import Settings
from tests.gateway.support import BI, create_worker, state

Clients = tuple[httpx.AsyncClient, httpx.AsyncClient]
VARYING = {"worker_id", "display_ref", "display_name", "created_at", "cursor"}


@pytest.fixture
async def clients(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> AsyncIterator[Clients]:
    routed = create_app(settings)
    routed.user_middleware = [m for m in routed.user_middleware if m.cls is not CreateFastPath]
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
    ):
        assert (await same(clients, "POST", f"{BI}/workers", **bad)).status_code == 422
    unknown_profile = {"display_name": "x", "profile": "nope"}
    assert (await same(clients, "POST", f"{BI}/workers", json=unknown_profile)).status_code == 422
    missing_parent = {"display_name": "x", "delegated_from": "01890a5d-ac96-774b-bcce-b302099a8057"}
    assert (await same(clients, "POST", f"{BI}/workers", json=missing_parent)).status_code == 404
    unknown = "/api/runtimes/nope/workers"
    assert (await same(clients, "POST", unknown, json={"display_name": "x"})).status_code == 404


async def test_the_fast_path_answers_and_is_counted_as_the_route(
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
