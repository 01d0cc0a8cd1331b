"""Backpressure through the HTTP API: 429 `rate_limited` past `YOI_MAX_QUEUED_INPUTS` (embedded
and fleet stores alike) and past the per-caller request rate, 503 `capacity_exhausted` when no
member can run the work; each with `Retry-After`, and nothing accepted is ever lost."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from runtime_worker.member import Member
from runtime_worker.runtime import Runtime
from shared.models import CreateWorker
from shared.settings import Settings
from tests.gateway.support import (
    events_until,
    finished,
    fleet_settings_for,
    running_app,
    settings_for,
)
from tests.helpers import wait_until

MAX_QUEUED = 3
TOKEN = "backpressure-token"


def fleet_settings(namespace: str, redis_url: str, **extra: Any) -> Settings:
    return fleet_settings_for(namespace, redis_url, **extra)


async def start_member(settings: Settings, member_id: str, **extra: Any) -> Member:
    member = Member(settings.model_copy(update={"member_id": member_id, **extra}))
    await member.start()
    return member


async def create(client: httpx.AsyncClient, runtime: str, name: str) -> httpx.Response:
    return await client.post(f"/api/runtimes/{runtime}/workers", json={"display_name": name})


def assert_retry_later(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["retryable"] is True
    assert int(response.headers["Retry-After"]) >= 1


@pytest.mark.parametrize("runtime", ["backend-internal", "fleet"])
async def test_past_the_queue_bound_429_and_nothing_accepted_is_lost(
    namespace: str, redis_url: str, runtime: str
) -> None:
    # Slow turns, so the queue fills before the first one ends.
    settings = fleet_settings(namespace, redis_url, max_queued_inputs=MAX_QUEUED, echo_delay_ms=30)
    member = await start_member(settings, "m1") if runtime == "fleet" else None
    try:
        async with running_app(settings) as (_app, client):
            made = await create(client, runtime, "queue")
            assert made.status_code == 201, made.text
            worker = f"/api/runtimes/{runtime}/workers/{made.json()['worker_id']}"
            body = {"strategy": "enqueue"}
            text = " ".join(f"word{i}" for i in range(30))
            accepted = []
            for i in range(MAX_QUEUED):
                sent = await client.post(f"{worker}/inputs", json={**body, "text": f"{i} {text}"})
                assert sent.status_code == 202, sent.text
                accepted.append(sent.json())
            over = await client.post(f"{worker}/inputs", json={**body, "text": "one too many"})
            assert_retry_later(over, 429, "rate_limited")
            # A retry of an accepted input still answers as before: the bound refuses only new work.
            again = await client.post(
                f"{worker}/inputs",
                json={**body, "text": f"0 {text}", "input_id": accepted[0]["input_id"]},
            )
            assert again.status_code == 202 and again.json() == accepted[0]

            for one in accepted:  # every accepted input reaches its run_finished
                await events_until(
                    client, f"{worker}/events", one["cursor"], finished(one["input_id"])
                )
            page = (await client.get(f"{worker}/transcript", params={"limit": 50})).json()
            users = [e["text"] for e in page["entries"] if e["role"] == "user"]
            assert users == [f"{i} {text}" for i in range(MAX_QUEUED)]
            answered = [e for e in page["entries"] if e["role"] == "assistant"]
            assert [e["result"] for e in answered] == ["finished"] * MAX_QUEUED
            later = await client.post(f"{worker}/inputs", json={**body, "text": "room again"})
            assert later.status_code == 202, later.text
            metrics = (await client.get("/metrics")).text
            assert f'yoi_inputs_rejected_total{{code="rate_limited",runtime="{runtime}"}} 1.0' in (
                metrics
            )
    finally:
        if member is not None:
            await member.stop()


async def test_per_caller_request_rate_429(namespace: str) -> None:
    settings = settings_for(namespace, api_token=TOKEN, rate_limit_per_s=0.01, rate_limit_burst=2)
    async with running_app(settings) as (_app, client):
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        for _ in range(2):
            assert (await client.get("/api/runtimes")).status_code == 200
        limited = await client.get("/api/runtimes")
        assert_retry_later(limited, 429, "rate_limited")
        assert int(limited.headers["Retry-After"]) >= 60  # one token back at 0.01/s: ~100 s
        assert TOKEN not in limited.text
        # Probes are never limited; a wrong token is refused by auth, not counted.
        assert (await client.get("/healthz")).status_code == 200
        wrong = await client.get("/api/runtimes", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401


async def test_no_member_503_and_nothing_is_written(namespace: str, redis_url: str) -> None:
    settings = fleet_settings(namespace, redis_url, capacity_wait_s=1.0)
    async with running_app(settings) as (_app, client):
        refused = await create(client, "fleet", "nobody-runs-me")
        assert_retry_later(refused, 503, "capacity_exhausted")
        listed = (await client.get("/api/runtimes/fleet/workers")).json()["workers"]
        assert listed == []

        # A Worker made by a program through the library (which does not ask for a member),
        # while no runtime process is there to run an input sent to it.
        library = Runtime.fleet("fleet", settings)
        try:
            made = await library.create_worker(CreateWorker(display_name="unhosted"))
        finally:
            await library.aclose()
        worker = f"/api/runtimes/fleet/workers/{made.worker_id}"

        before = (await client.get(worker)).json()
        sent = await client.post(f"{worker}/inputs", json={"text": "who would answer this?"})
        assert_retry_later(sent, 503, "capacity_exhausted")
        after = (await client.get(worker)).json()
        assert after["cursor"] == before["cursor"]  # no user_message was written
        assert after["diagnostics"]["queue_depth"] == 0

        member = await start_member(settings, "m1")
        try:
            sent = await client.post(f"{worker}/inputs", json={"text": "answered now"})
            assert sent.status_code == 202, sent.text
            one = sent.json()
            await events_until(client, f"{worker}/events", one["cursor"], finished(one["input_id"]))
        finally:
            await member.stop()


async def test_all_members_at_capacity_503(namespace: str, redis_url: str) -> None:
    settings = fleet_settings(namespace, redis_url, capacity_wait_s=0.3)
    member = await start_member(settings, "m1", capacity=1)
    try:
        async with running_app(settings) as (_app, client):
            first = await create(client, "fleet", "the-only-one")
            assert first.status_code == 201, first.text
            worker = f"/api/runtimes/fleet/workers/{first.json()['worker_id']}"

            async def full() -> bool:
                members = (await client.get("/api/runtimes/fleet/members")).json()["members"]
                return [m["hosted"] for m in members] == [1]

            await wait_until(full, timeout_s=10, what="the member reporting its one Worker")
            refused = await create(client, "fleet", "no-room")
            assert_retry_later(refused, 503, "capacity_exhausted")
            names = [
                w["display_name"]
                for w in (await client.get("/api/runtimes/fleet/workers")).json()["workers"]
            ]
            assert names == ["the-only-one"]
            # The hosted Worker still takes input: its host is alive.
            sent = await client.post(f"{worker}/inputs", json={"text": "still served"})
            assert sent.status_code == 202, sent.text
            one = sent.json()
            await events_until(client, f"{worker}/events", one["cursor"], finished(one["input_id"]))
    finally:
        await member.stop()
