"""Bearer token, fail-closed binding, stream tickets and CORS."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.auth import Tickets, UnsafeConfig, is_loopback
from tests.gateway.support import BI, open_stream, running_app, settings_for

TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "gateway.example"])
def test_refuses_to_start_beyond_loopback_without_a_token(namespace: str, host: str) -> None:
    with pytest.raises(UnsafeConfig, match="YOI_API_TOKEN"):
        create_app(settings_for(namespace, host=host))
    create_app(settings_for(namespace, host=host, api_token=TOKEN))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_needs_no_token(host: str) -> None:
    assert is_loopback(host)


_BODIES: dict[str, dict[str, Any]] = {
    "workers": {"display_name": "another"},
    "workers:batch": {"workers": [{"display_name": "batched"}]},
    "inputs": {"text": "hello", "strategy": "enqueue"},
    "messages": {"text": "hello", "strategy": "enqueue"},
    "schedules": {"text": "hello", "cron": "0 9 * * *"},
}


def _concrete(path: str, worker_id: str, run_id: str, schedule_id: str) -> str:
    path = path.replace("{runtime_id}", "backend-internal").replace("{worker_id}", worker_id)
    path = path.replace("{run_id}", run_id).replace("{schedule_id}", schedule_id)
    path = path.replace("{member_id}", "embedded")
    assert not re.search(r"{\w+}", path), path
    return path


async def test_every_api_route_needs_the_token_beyond_loopback(namespace: str) -> None:
    settings = settings_for(namespace, host="0.0.0.0", api_token=TOKEN)
    async with running_app(settings) as (app, client):
        created = await client.post(f"{BI}/workers", json={"display_name": "w"}, headers=AUTH)
        worker_id = created.json()["worker_id"]
        ran = await client.post(
            f"{BI}/workers/{worker_id}/inputs", json={"text": "hi", "wait_s": 20}, headers=AUTH
        )
        assert ran.status_code == 200, ran.text
        scheduled = await client.post(
            f"{BI}/workers/{worker_id}/schedules", json=_BODIES["schedules"], headers=AUTH
        )
        assert scheduled.status_code == 201, scheduled.text
        schedule_id = scheduled.json()["schedule_id"]
        schema = (await client.get("/openapi.json")).json()
        routes = [
            (method.upper(), _concrete(path, worker_id, ran.json()["run_id"], schedule_id))
            for path, operations in schema["paths"].items()
            if path.startswith("/api/")
            for method in operations
        ]
        assert len(routes) >= 20
        bad_headers: list[dict[str, str]] = [
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": f"Bearer {TOKEN}x"},
        ]
        for method, path in routes:
            for headers in bad_headers:
                response = await client.request(method, path, headers=headers, json={"text": "x"})
                assert response.status_code == 401, (method, path, headers)
                assert response.json()["error"]["code"] == "unauthorized"
                assert response.headers["www-authenticate"] == "Bearer"
        for method, path in sorted(routes, key=lambda route: route[1].endswith("/stop")):
            if path.endswith("/events/stream"):
                continue  # streams are checked below: they do not end by themselves
            body: dict[str, Any] | None = (
                dict(_BODIES.get(path.rsplit("/", 1)[-1], {})) if method == "POST" else None
            )
            if method == "PATCH":
                body = {"webhook_url": None}
            response = await client.request(method, path, headers=AUTH, json=body)
            if path.endswith("/drain"):  # past auth: the embedded runtime has no member to drain
                assert response.json()["error"]["code"] == "unsupported_operation"
                continue
            assert response.status_code < 400, (method, path, response.text)
        for path in (f"{BI}/workers/{worker_id}/events/stream", "/api/companion/events/stream"):
            async with open_stream(app, path, AUTH) as stream:
                assert stream.status == 200
        assert (await client.get("/api/nowhere")).status_code == 401  # unknown paths too


async def test_open_paths_and_protected_metrics(namespace: str) -> None:
    settings = settings_for(namespace, host="0.0.0.0", api_token=TOKEN)
    async with running_app(settings) as (_app, client):
        for path in ("/healthz", "/readyz", "/", "/static/favicon.svg", "/docs", "/openapi.json"):
            assert (await client.get(path)).status_code == 200, path
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers=AUTH)).status_code == 200


async def test_a_token_on_loopback_is_required_too(namespace: str) -> None:
    async with running_app(settings_for(namespace, api_token=TOKEN)) as (_app, client):
        assert (await client.get("/api/runtimes")).status_code == 401
        assert (await client.get("/api/runtimes", headers=AUTH)).status_code == 200


async def test_no_token_on_loopback_means_open(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/runtimes")).status_code == 200
    assert (await client.get("/metrics")).status_code == 200


async def test_stream_ticket_opens_that_workers_stream_only(namespace: str) -> None:
    settings = settings_for(namespace, host="0.0.0.0", api_token=TOKEN)
    async with running_app(settings) as (app, client):
        mine = (await client.post(f"{BI}/workers", json={"display_name": "a"}, headers=AUTH)).json()
        other = (
            await client.post(f"{BI}/workers", json={"display_name": "b"}, headers=AUTH)
        ).json()
        worker = f"{BI}/workers/{mine['worker_id']}"
        assert (await client.post(f"{worker}/stream-ticket")).status_code == 401
        issued = (await client.post(f"{worker}/stream-ticket", headers=AUTH)).json()
        ticket = issued["ticket"]
        assert TOKEN not in ticket and issued["expires_in"] == settings.stream_ticket_ttl_s

        async with open_stream(app, f"{worker}/events/stream?ticket={ticket}") as stream:
            assert stream.status == 200
            messages = await stream.read_until(lambda ms: len(ms) >= 2)
            assert {m.json()["worker_id"] for m in messages} == {mine["worker_id"]}
        elsewhere = f"{BI}/workers/{other['worker_id']}/events/stream?ticket={ticket}"
        assert (await client.get(elsewhere)).status_code == 401
        for path in (f"{worker}/events", worker, f"{worker}/transcript"):
            assert (await client.get(f"{path}?ticket={ticket}")).status_code == 401
        tampered = ticket[:-2] + ("AA" if not ticket.endswith("AA") else "BB")
        assert (await client.get(f"{worker}/events/stream?ticket={tampered}")).status_code == 401
        forged_expiry = "9" * 11 + ticket[ticket.index(".") :]
        assert (
            await client.get(f"{worker}/events/stream?ticket={forged_expiry}")
        ).status_code == 401

        companion = (await client.post("/api/companion/stream-ticket", headers=AUTH)).json()
        path = f"/api/companion/events/stream?ticket={companion['ticket']}"
        async with open_stream(app, path) as stream:
            assert stream.status == 200
        wrong = f"/api/companion/events/stream?ticket={ticket}"
        assert (await client.get(wrong)).status_code == 401


def test_tickets_expire_and_replicas_sharing_the_token_agree(namespace: str) -> None:
    now = [1_000_000.0]
    settings = settings_for(namespace, api_token=TOKEN, stream_ticket_ttl_s=30)
    issuer = Tickets(settings, clock=lambda: now[0])
    replica = Tickets(settings, clock=lambda: now[0])
    ticket = issuer.issue("backend-internal", "w1")
    assert replica.verify(ticket, "backend-internal", "w1")
    assert not replica.verify(ticket, "backend-internal", "w2")
    assert not replica.verify(ticket, "fleet", "w1")
    now[0] += 31
    assert not replica.verify(ticket, "backend-internal", "w1")
    other_token = Tickets(settings_for(namespace, api_token="another"), clock=lambda: now[0])
    assert not other_token.verify(issuer.issue("backend-internal", "w1"), "backend-internal", "w1")
    for garbage in ("", ".", "abc.def", "1.", "-5.x", "1" * 40 + ".x"):
        assert not issuer.verify(garbage, "backend-internal", "w1")


async def test_cors_is_closed_by_default(client: httpx.AsyncClient) -> None:
    preflight = {
        "Origin": "https://elsewhere.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    response = await client.options("/api/runtimes", headers=preflight)
    assert "access-control-allow-origin" not in response.headers
    response = await client.get("/api/runtimes", headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in response.headers


async def test_cors_opens_for_configured_origins_only(namespace: str) -> None:
    origin = "https://console.example"
    settings = settings_for(namespace, api_token=TOKEN, cors_origins=[origin])
    async with running_app(settings) as (_app, client):
        preflight = {
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        }
        response = await client.options("/api/runtimes", headers=preflight)
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == origin
        denied = await client.options(
            "/api/runtimes", headers={**preflight, "Origin": "https://evil.example"}
        )
        assert denied.headers.get("access-control-allow-origin") != "https://evil.example"
