"""`gateway.hotroutes`: the hot routes reach their endpoints without the router, and answer
exactly what the ordinary stack answers (bodies, statuses, headers, typed errors, the route
template in metrics), request for request."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.routing import Router

from gateway.hotroutes import HotRoutesMiddleware, _may_shadow
from gateway.requests import RequestRoute
from tests.gateway.support import BI, create_worker, events_until, finished

NOWHERE = "01a23724-d351-702e-8b3a-53345526bf49"


async def _through_the_router(
    self: HotRoutesMiddleware, scope: Any, receive: Any, send: Any
) -> None:
    await self.app(scope, receive, send)


def _requests(worker_id: str, cursor: str) -> list[tuple[str, str, dict[str, Any]]]:
    inputs = f"{BI}/workers/{worker_id}/inputs"
    events = f"{BI}/workers/{worker_id}/events"
    return [
        ("POST", inputs, {"json": {"text": "again", "input_id": "same-input"}}),
        ("POST", inputs, {"json": {"text": 3}}),
        (
            "POST",
            inputs,
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
        ),
        ("POST", inputs, {"content": b"{}", "headers": {"content-type": "text/plain"}}),
        ("POST", inputs, {"content": b"", "headers": {"content-type": "application/json"}}),
        ("POST", f"{BI}/workers/{NOWHERE}/inputs", {"json": {"text": "hi"}}),
        ("POST", f"{BI}/workers/not-an-id/inputs", {"json": {"text": "hi"}}),
        (
            "POST",
            f"/api/runtimes/no-such-runtime/workers/{worker_id}/inputs",
            {"json": {"text": "x"}},
        ),
        ("GET", events, {"params": {"after": cursor, "limit": 5}}),
        ("GET", events, {"params": {"limit": 0}}),
        ("GET", events, {"params": {"after": "yesterday"}}),
        ("GET", f"{BI}/workers/{NOWHERE}/events", {}),
        ("POST", f"{BI}/workers", {"json": {"display_name": 7}}),
        ("GET", inputs, {}),  # a 405: the ordinary stack's either way
        ("PUT", events, {}),
    ]


def _answer(response: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = sorted((k, v) for k, v in response.headers.items() if k != "date")
    return response.status_code, response.content, headers


async def test_the_same_answers_as_the_ordinary_stack(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker_id = await create_worker(client)
    first = await client.post(
        f"{BI}/workers/{worker_id}/inputs", json={"text": "again", "input_id": "same-input"}
    )
    assert first.status_code == 202
    await events_until(client, f"{BI}/workers/{worker_id}/events", None, finished("same-input"))
    page = await client.get(f"{BI}/workers/{worker_id}/events", params={"limit": 1})
    cursor = page.json()["cursor"]

    hot = [_answer(await client.request(m, u, **kw)) for m, u, kw in _requests(worker_id, cursor)]
    monkeypatch.setattr(HotRoutesMiddleware, "__call__", _through_the_router)
    ordinary = [
        _answer(await client.request(m, u, **kw)) for m, u, kw in _requests(worker_id, cursor)
    ]
    assert hot == ordinary
    statuses = [status for status, _, _ in hot]
    assert statuses == [202, 422, 422, 422, 422, 404, 404, 404, 200, 422, 422, 404, 422, 405, 405]

    created = [await client.post(f"{BI}/workers", json={"display_name": "n"}) for _ in range(2)]
    monkeypatch.undo()
    created.append(await client.post(f"{BI}/workers", json={"display_name": "n"}))
    assert [r.status_code for r in created] == [201, 201, 201]
    assert len({tuple(sorted(r.json())) for r in created}) == 1


async def test_hot_requests_skip_the_router_and_keep_their_route_template(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker_id = await create_worker(client)
    routed: list[str] = []
    original = Router.__call__

    async def counting(self: Router, scope: Any, receive: Any, send: Any) -> None:
        routed.append(scope["path"])
        await original(self, scope, receive, send)

    monkeypatch.setattr(Router, "__call__", counting)
    sent = await client.post(f"{BI}/workers/{worker_id}/inputs", json={"text": "hi"})
    assert sent.status_code == 202
    polled = await client.get(f"{BI}/workers/{worker_id}/events", params={"limit": 1})
    assert polled.status_code == 200
    assert routed == []
    assert (await client.get(f"{BI}/workers/{worker_id}")).status_code == 200
    assert routed == [f"{BI}/workers/{worker_id}"]

    metrics = (await client.get("/metrics")).text
    template = "/api/runtimes/{runtime_id}/workers/{worker_id}/inputs"
    assert f'route="{template}"' in metrics


def test_an_earlier_route_that_could_match_is_asked_first(app: FastAPI) -> None:
    hot = [r for r in app.router.routes if isinstance(r, RequestRoute)]
    assert {r.path for r in hot} >= {
        "/api/runtimes/{runtime_id}/workers",
        "/api/runtimes/{runtime_id}/workers/{worker_id}/inputs",
        "/api/runtimes/{runtime_id}/workers/{worker_id}/events",
    }
    inputs = next(r for r in hot if r.path.endswith("/inputs"))
    twin = RequestRoute(
        "/api/runtimes/embedded/workers/{worker_id}/inputs", inputs.endpoint, methods=["POST"]
    )
    other_method = RequestRoute(
        "/api/runtimes/{a}/workers/{b}/inputs", inputs.endpoint, methods=["GET"]
    )
    elsewhere = RequestRoute(
        "/api/runtimes/{a}/workers/{b}/cancel", inputs.endpoint, methods=["POST"]
    )
    assert _may_shadow(twin, inputs, "POST")
    assert not _may_shadow(other_method, inputs, "POST")
    assert not _may_shadow(elsewhere, inputs, "POST")
