"""The hot routes (inputs, the events long poll, create) read their request themselves
(`gateway.requests`): their OpenAPI declaration must be what FastAPI would write for the same
parameters, their edges must answer typed errors that change nothing, and the access log and
metrics must name them as any route."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Query

from gateway.routes._shared import AFTER_PATTERN, MAX_CURSOR_CHARS, EventsQuery
from runtime_worker.runtime import MAX_PAGE, MAX_WAIT_MS
from shared.models import CreateWorker, InputRequest
from tests.gateway.support import BI, create_worker, events_until, finished

WORKER_PATH = "/api/runtimes/{runtime_id}/workers/{worker_id}"
_FIELDS = EventsQuery.model_fields


def _typed_twin() -> dict[str, Any]:
    """The same three operations declared the FastAPI way: parameters in the signature."""
    twin = FastAPI()

    @twin.post(WORKER_PATH + "/inputs")
    async def inputs(runtime_id: str, worker_id: str, body: InputRequest) -> None: ...

    @twin.post("/api/runtimes/{runtime_id}/workers")
    async def create(runtime_id: str, body: CreateWorker) -> None: ...

    @twin.get(WORKER_PATH + "/events")
    async def events(
        runtime_id: str,
        worker_id: str,
        after: str | None = Query(
            None,
            max_length=MAX_CURSOR_CHARS,
            pattern=AFTER_PATTERN,
            description=_FIELDS["after"].description,
        ),
        limit: int = Query(100, ge=1, le=MAX_PAGE),
        wait_ms: int = Query(0, ge=0, le=MAX_WAIT_MS, description=_FIELDS["wait_ms"].description),
    ) -> None: ...

    return twin.openapi()


@pytest.mark.parametrize(
    ("path", "method"),
    [
        (WORKER_PATH + "/inputs", "post"),
        ("/api/runtimes/{runtime_id}/workers", "post"),
        (WORKER_PATH + "/events", "get"),
    ],
)
async def test_declared_as_fastapi_declares_typed_parameters(
    app: FastAPI, path: str, method: str
) -> None:
    ours, twin = app.openapi(), _typed_twin()
    mine, theirs = ours["paths"][path][method], twin["paths"][path][method]
    assert mine["parameters"] == theirs["parameters"]
    assert mine.get("requestBody") == theirs.get("requestBody")
    for name, schema in twin["components"]["schemas"].items():
        if name in ("InputRequest", "CreateWorker", "ScopeEntry", "ScopeMode", "Strategy"):
            # Our `text` carries the limits `gateway.openapi` adds; the rest is FastAPI's own.
            strict = dict(ours["components"]["schemas"][name])
            if name == "InputRequest":
                strict["properties"] = {
                    **strict["properties"],
                    "text": schema["properties"]["text"],
                }
            assert strict == schema, name


async def test_bodies_must_be_json_and_a_refusal_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    worker = f"{BI}/workers/{await create_worker(client)}"
    for headers in ({"content-type": "text/plain"}, {}):
        refused = await client.post(
            f"{worker}/inputs", content=b'{"text": "x", "input_id": "no-json"}', headers=headers
        )
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_input"
        assert "Content-Type" in refused.json()["error"]["message"]
    for i, content_type in enumerate(("application/json; charset=utf-8", "application/x+json")):
        body = f'{{"text": "json {i}", "input_id": "json-{i}"}}'.encode()
        accepted = await client.post(
            f"{worker}/inputs", content=body, headers={"content-type": content_type}
        )
        assert accepted.status_code == 202, accepted.text
    events = await events_until(client, f"{worker}/events", None, finished("json-1"))
    sent = [e["input_id"] for e in events if e["type"] == "user_message"]
    assert sent == ["json-0", "json-1"]


async def test_query_like_fastapi_last_value_wins_unknown_ignored(
    client: httpx.AsyncClient,
) -> None:
    worker = f"{BI}/workers/{await create_worker(client)}"
    page = await client.get(f"{worker}/events?limit=5&limit=1&other=x")
    assert page.status_code == 200 and len(page.json()["events"]) == 1
    refused = await client.get(f"{worker}/events?limit=1&limit=0")
    assert refused.json()["error"] == {
        "code": "invalid_input",
        "message": "query.limit: Input should be greater than or equal to 1",
        "retryable": False,
    }


async def test_hot_routes_are_counted_under_their_templates(client: httpx.AsyncClient) -> None:
    worker = f"{BI}/workers/{await create_worker(client)}"
    sent = await client.post(f"{worker}/inputs", json={"text": "hi", "input_id": "counted"})
    assert sent.status_code == 202
    page = await client.get(f"{worker}/events", params={"after": sent.json()["cursor"]})
    assert page.status_code == 200
    metrics = (await client.get("/metrics")).text
    template = "/api/runtimes/{runtime_id}/workers"
    for route, method, status in (
        ("", "POST", "201"),
        ("/{worker_id}/inputs", "POST", "202"),
        ("/{worker_id}/events", "GET", "200"),
    ):
        labels = f'method="{method}",route="{template}{route}",status="{status}"'
        assert "yoi_http_requests_total{" + labels + "} 1.0" in metrics
