"""Every error code of the SPEC table that the gateway can answer, with its status and body.

Codes that cannot arise from the gateway today, and why:
- `not_running`: no Runtime operation raises it (cancel of an idle Worker is a no-op answering
  `cancelled: false`, stop of a stopped one answers its detail).
- `unsupported_operation`: every runtime kind supports every operation (Capabilities all true).
- `rate_limited`: the gateway has no rate limiter, and a provider's 429 is retried by the
  provider and ends a run as a `provider_error` event, never an HTTP answer.
- `capacity_exhausted`: the embedded runtime has no placement; a fleet Worker without a host
  stays `pending` (readiness reports no alive member) instead of refusing the create.
- `provider_error`, `timeout`: failures of a run, reported in the event stream (`error` event
  and `run_finished` `failed` / `timed_out`), tested below through the gateway's events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.settings import Settings
from tests.gateway.support import (
    BI,
    create_worker,
    events_until,
    finished,
    open_stream,
    running_app,
    settings_for,
    state,
)
from tests.helpers import free_port

UNKNOWN_WORKER = "01890a5d-ac96-774b-bcce-b302099a8057"


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    error: dict[str, Any] = body["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["retryable"], bool)
    return error


async def test_invalid_input_bodies_queries_and_cursors(client: httpx.AsyncClient) -> None:
    worker = f"{BI}/workers/{await create_worker(client)}"
    missing = assert_error(await client.post(f"{worker}/inputs", json={}), 422, "invalid_input")
    assert missing["message"] == "body.text: Field required"
    assert_error(await client.post(f"{worker}/inputs", json={"text": "   "}), 422, "invalid_input")
    assert_error(
        await client.post(f"{worker}/inputs", json={"text": "x", "strategy": "sometimes"}),
        422,
        "invalid_input",
    )
    assert_error(
        await client.post(f"{BI}/workers", json={"display_name": "bad name!"}), 422, "invalid_input"
    )
    unknown_profile = await client.post(
        f"{BI}/workers", json={"display_name": "p", "profile": "no-such-profile"}
    )
    assert_error(unknown_profile, 422, "invalid_input")
    assert_error(await client.get(f"{worker}/events", params={"limit": 0}), 422, "invalid_input")
    assert_error(
        await client.get(f"{worker}/events", params={"wait_ms": 60_001}), 422, "invalid_input"
    )
    assert_error(
        await client.get(f"{worker}/events", params={"after": "not-a-cursor"}), 422, "invalid_input"
    )
    assert_error(
        await client.get(f"{worker}/transcript", params={"before": "nope"}), 422, "invalid_input"
    )
    malformed_json = await client.post(
        f"{worker}/inputs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_error(malformed_json, 422, "invalid_input")


async def test_validation_errors_never_echo_the_input(client: httpx.AsyncClient) -> None:
    marker = "ECHO-MARKER-" * 1000
    response = await client.post(
        f"{BI}/workers", json={"display_name": marker, "scope": [{"path": marker}]}
    )
    error = assert_error(response, 422, "invalid_input")
    assert "ECHO-MARKER" not in response.text
    assert "body.display_name" in error["message"]


async def test_unknown_routes_and_methods_are_typed(client: httpx.AsyncClient) -> None:
    error = assert_error(await client.get("/api/nothing/here"), 404, "not_found")
    assert "no such route" in error["message"]
    assert_error(await client.get("/not-the-api"), 404, "not_found")
    assert_error(await client.post(f"{BI}/nope", json={}), 404, "not_found")
    assert_error(await client.get("/static/no-such-file.js"), 404, "not_found")
    wrong = await client.delete("/api/runtimes")
    assert_error(wrong, 405, "method_not_allowed")
    assert wrong.headers["allow"] == "GET"
    wrong = await client.get(f"{BI}/workers/{UNKNOWN_WORKER}/inputs")
    assert_error(wrong, 405, "method_not_allowed")
    assert wrong.headers["allow"] == "POST"


def nested(key: str, depth: int) -> bytes:
    """About 1,000 levels in 2 KB: `{"key": [[[...]]]}`."""
    return f'{{"{key}": {"[" * depth}{"]" * depth}}}'.encode()


@pytest.mark.parametrize("depth", [1000, 5000])
async def test_deeply_nested_json_is_invalid_input_on_every_json_route(
    client: httpx.AsyncClient, depth: int
) -> None:
    worker_id = await create_worker(client)
    worker = f"{BI}/workers/{worker_id}"
    routes = [
        (f"{worker}/inputs", "text"),  # two routes that read their body themselves, and one
        # whose body FastAPI reads
        (f"{BI}/workers", "display_name"),
        ("/api/companion/messages", "text"),
    ]
    for path, key in routes:
        for content_type in ("application/json", "application/merge-patch+json"):
            response = await client.post(
                path, content=nested(key, depth), headers={"content-type": content_type}
            )
            error = assert_error(response, 422, "invalid_input")
            assert error["message"] == "the JSON body is nested too deeply", path
    # Nothing changed: no input accepted, no Worker made.
    events = (await client.get(f"{worker}/events")).json()["events"]
    assert [e["type"] for e in events if e["type"] == "user_message"] == []
    names = [w["display_name"] for w in (await client.get(f"{BI}/workers")).json()["workers"]]
    assert names == ["w"]


async def test_runtime_not_found_for_unknown_and_malformed_ids(client: httpx.AsyncClient) -> None:
    for runtime_id in ("nope", "NOT_A_SLUG", "x" * 300):
        for path in ("", "/workers", f"/workers/{UNKNOWN_WORKER}/events"):
            response = await client.get(f"/api/runtimes/{runtime_id}{path}")
            assert_error(response, 404, "runtime_not_found")
            assert "x" * 100 not in response.text


async def test_worker_not_found_for_unknown_and_malformed_ids(client: httpx.AsyncClient) -> None:
    for worker_id in (UNKNOWN_WORKER, "not-a-worker-id"):
        worker = f"{BI}/workers/{worker_id}"
        assert_error(await client.get(worker), 404, "worker_not_found")
        assert_error(
            await client.post(f"{worker}/inputs", json={"text": "x"}), 404, "worker_not_found"
        )
        assert_error(await client.post(f"{worker}/cancel"), 404, "worker_not_found")
        assert_error(await client.post(f"{worker}/stop"), 404, "worker_not_found")
        assert_error(await client.get(f"{worker}/transcript"), 404, "worker_not_found")
        assert_error(await client.get(f"{worker}/runs"), 404, "worker_not_found")
        assert_error(await client.get(f"{worker}/runs/some-run"), 404, "worker_not_found")
        assert_error(await client.get(f"{worker}/events"), 404, "worker_not_found")
        assert_error(await client.get(f"{worker}/events/stream"), 404, "worker_not_found")
        assert_error(await client.post(f"{worker}/stream-ticket"), 404, "worker_not_found")
    parent = {"display_name": "child", "delegated_from": UNKNOWN_WORKER}
    assert_error(await client.post(f"{BI}/workers", json=parent), 404, "worker_not_found")


@pytest.mark.chaos
async def test_worker_busy_with_reject_one_202_one_409(client: httpx.AsyncClient) -> None:
    worker = f"{BI}/workers/{await create_worker(client)}"
    body = {"text": "/slow busy now", "strategy": "reject"}
    answers = await asyncio.gather(
        client.post(f"{worker}/inputs", json=body), client.post(f"{worker}/inputs", json=body)
    )
    assert sorted(r.status_code for r in answers) == [202, 409]
    busy = next(r for r in answers if r.status_code == 409)
    assert assert_error(busy, 409, "worker_busy")["retryable"] is True
    companion_busy = [
        await client.post("/api/companion/messages", json={"text": "/slow first"}),
        await client.post("/api/companion/messages", json={"text": "second"}),
    ]
    assert companion_busy[0].status_code == 202
    assert_error(companion_busy[1], 409, "worker_busy")


async def test_worker_stopped(client: httpx.AsyncClient) -> None:
    worker = f"{BI}/workers/{await create_worker(client)}"
    await client.post(f"{worker}/stop")
    assert_error(await client.post(f"{worker}/inputs", json={"text": "x"}), 409, "worker_stopped")


async def test_scope_conflict(client: httpx.AsyncClient) -> None:
    scope = [{"path": "/repo/src", "mode": "write"}]
    await create_worker(client, "writer", scope=scope)
    overlapping = {"display_name": "other", "scope": [{"path": "/repo", "mode": "write"}]}
    error = assert_error(
        await client.post(f"{BI}/workers", json=overlapping), 409, "scope_conflict"
    )
    assert "/repo" not in error["message"]


async def test_payload_too_large_declared_chunked_and_text(namespace: str) -> None:
    settings = settings_for(namespace, max_body_bytes=2048, max_input_chars=100)
    async with running_app(settings) as (_app, client):
        worker = f"{BI}/workers/{await create_worker(client)}"
        big = {"text": "x" * 4000}
        assert_error(await client.post(f"{worker}/inputs", json=big), 413, "payload_too_large")

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
            yield b'{"text": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}'

        response = await client.post(
            f"{worker}/inputs", content=chunked(), headers={"content-type": "application/json"}
        )
        assert "content-length" not in response.request.headers
        assert_error(response, 413, "payload_too_large")
        long_text = await client.post(f"{worker}/inputs", json={"text": "z" * 101})
        assert_error(long_text, 413, "payload_too_large")
        ok = await client.post(f"{worker}/inputs", json={"text": "z" * 100})
        assert ok.status_code == 202
        rejected = (await client.get("/metrics")).text
        assert 'yoi_inputs_rejected_total{code="payload_too_large",runtime="backend-internal"}' in (
            rejected
        )


async def test_cursor_expired_with_the_oldest_cursor(namespace: str) -> None:
    async with running_app(settings_for(namespace, events_maxlen=10)) as (app, client):
        worker = f"{BI}/workers/{await create_worker(client)}"
        first = (await client.get(f"{worker}/events")).json()["events"][0]["cursor"]
        for index in range(3):
            sent = (await client.post(f"{worker}/inputs", json={"text": f"m{index}"})).json()
            await events_until(
                client, f"{worker}/events", sent["cursor"], finished(sent["input_id"])
            )
        oldest = (await client.get(f"{worker}/events")).json()["events"][0]["cursor"]
        expired = await client.get(f"{worker}/events", params={"after": first})
        error = assert_error(expired, 410, "cursor_expired")
        assert error["oldest_cursor"] and error["oldest_cursor"] < oldest
        resumed = await client.get(f"{worker}/events", params={"after": error["oldest_cursor"]})
        assert resumed.json()["events"][0]["cursor"] == oldest
        stream = await client.get(f"{worker}/events/stream", headers={"last-event-id": first})
        assert (
            assert_error(stream, 410, "cursor_expired")["oldest_cursor"] == error["oldest_cursor"]
        )
        assert state(app).metrics.sse_clients._value.get() == 0


async def test_runtime_unavailable_for_a_fleet_on_a_dead_redis(namespace: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = settings_for(namespace, redis_url=dead, fleets=["fleet"])
    async with running_app(settings) as (_app, client):
        fleet = "/api/runtimes/fleet"
        assert_error(await client.get(fleet), 503, "runtime_unavailable")
        assert_error(await client.get(f"{fleet}/workers"), 503, "runtime_unavailable")
        create = await client.post(f"{fleet}/workers", json={"display_name": "f"})
        assert assert_error(create, 503, "runtime_unavailable")["retryable"] is True
        worker = f"{fleet}/workers/{UNKNOWN_WORKER}"
        assert_error(
            await client.post(f"{worker}/inputs", json={"text": "x"}), 503, "runtime_unavailable"
        )
        assert_error(await client.get(f"{worker}/events"), 503, "runtime_unavailable")
        assert_error(await client.get(f"{worker}/events/stream"), 503, "runtime_unavailable")
        listing = (await client.get("/api/workers")).json()
        assert listing["unavailable"] == ["fleet"]
        statuses = {
            r["runtime_id"]: r["status"]
            for r in (await client.get("/api/runtimes")).json()["runtimes"]
        }
        assert statuses == {"backend-internal": "ok", "fleet": "unavailable"}
        ready = await client.get("/readyz")
        assert assert_error(ready, 503, "runtime_unavailable")
        assert {r["runtime_id"]: r["reason"] for r in ready.json()["runtimes"]} == {
            "backend-internal": None,
            "fleet": "unreachable",
        }
        # The embedded runtime keeps working.
        local = await create_worker(client)
        sent = await client.post(f"{BI}/workers/{local}/inputs", json={"text": "still here"})
        assert sent.status_code == 202


@pytest.fixture
def profiles_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "hasty.toml").write_text(
        'name = "hasty"\nprovider = "chaos"\nturn_timeout_s = 0.05\n', encoding="utf-8"
    )
    return folder


async def test_provider_error_and_timeout_arrive_as_run_events(
    namespace: str, profiles_dir: Path
) -> None:
    async with running_app(settings_for(namespace, profiles_dir=profiles_dir)) as (_app, client):
        worker = f"{BI}/workers/{await create_worker(client, profile='hasty')}"
        failing = (await client.post(f"{worker}/inputs", json={"text": "/fail now"})).json()
        events = await events_until(
            client, f"{worker}/events", failing["cursor"], finished(failing["input_id"])
        )
        errors = [e for e in events if e["type"] == "error"]
        assert [e["code"] for e in errors] == ["provider_error"]
        assert [e["result"] for e in events if e["type"] == "run_finished"] == ["failed"]
        slow = (await client.post(f"{worker}/inputs", json={"text": "/slow too slow"})).json()
        events = await events_until(
            client, f"{worker}/events", slow["cursor"], finished(slow["input_id"])
        )
        assert [e["code"] for e in events if e["type"] == "error"] == ["timeout"]
        assert [e["result"] for e in events if e["type"] == "run_finished"] == ["timed_out"]


async def test_unexpected_exception_is_a_generic_500_logged_by_type_only(
    app: Any,
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret_path = "/srv/secret/store/path.db"

    async def broken() -> None:
        raise OSError(f"cannot open {secret_path}")

    monkeypatch.setattr(state(app).runtimes().embedded, "list_workers", broken)
    caplog.set_level(logging.DEBUG)
    response = await client.get(f"{BI}/workers")
    assert_error(response, 500, "internal_error")
    assert secret_path not in response.text
    assert secret_path not in caplog.text and "Traceback" not in caplog.text
    assert "unhandled OSError" in caplog.text


async def test_stream_open_to_an_unknown_worker_leaves_nothing_behind(
    app: Any, client: httpx.AsyncClient
) -> None:
    async with open_stream(app, f"{BI}/workers/{UNKNOWN_WORKER}/events/stream") as stream:
        assert stream.status == 404
    gateway = state(app)
    assert len(gateway.hubs) == 0 and gateway.metrics.sse_clients._value.get() == 0


def test_settings_fixture_is_isolated(settings: Settings) -> None:
    assert settings.api_token is None and settings.redis_url is None
