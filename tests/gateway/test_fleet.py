"""Fleet routes on a real Redis with an in-process member: the same shapes as the embedded
runtime, `kind: fleet` in diagnostics, readiness that waits for a member, and streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from runtime_worker.member import Member
from shared.settings import Settings
from tests.gateway.support import (
    BlockingReads,
    fleet_settings_for,
    open_stream,
    ran,
    running_app,
    state,
)
from tests.helpers import wait_until

FLEET = "/api/runtimes/fleet"


@pytest.fixture
def fleet_settings(namespace: str, redis_url: str) -> Settings:
    return fleet_settings_for(namespace, redis_url)


@pytest.fixture
async def fleet(fleet_settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with running_app(fleet_settings) as pair:
        yield pair


async def start_member(settings: Settings) -> Member:
    member = Member(settings)
    await member.start()
    return member


async def test_readiness_waits_for_an_alive_member(
    fleet: tuple[FastAPI, httpx.AsyncClient], fleet_settings: Settings
) -> None:
    _app, client = fleet
    waiting = await client.get("/readyz")
    assert waiting.status_code == 503
    assert "fleet (no_alive_member)" in waiting.json()["error"]["message"]
    member = await start_member(fleet_settings)
    try:

        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await wait_until(ready, what="readiness with one alive member")
        detail = (await client.get(FLEET)).json()
        assert detail["kind"] == "fleet" and detail["status"] == "ok"
        assert [m["alive"] for m in detail["diagnostics"]["members"]] == [True]
    finally:
        await member.stop()


async def test_fleet_worker_end_to_end_through_the_gateway(
    fleet: tuple[FastAPI, httpx.AsyncClient],
    fleet_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, client = fleet
    member = await start_member(fleet_settings)
    try:
        created = await client.post(f"{FLEET}/workers", json={"display_name": "remote"})
        assert created.status_code == 201
        detail = created.json()
        assert (detail["kind"], detail["display_ref"]) == ("fleet", "remote@fleet")
        worker = f"{FLEET}/workers/{detail['worker_id']}"
        runtime = state(app).runtimes().get("fleet")
        reads = BlockingReads(runtime, monkeypatch)
        streams = [await open_stream(app, f"{worker}/events/stream").open() for _ in range(50)]
        body = {"text": "over redis", "input_id": "fleet-input-1"}
        first, again = await asyncio.gather(
            client.post(f"{worker}/inputs", json=body), client.post(f"{worker}/inputs", json=body)
        )
        assert first.status_code == again.status_code == 202 and first.json() == again.json()
        for stream in streams:  # no long poll of our own here: it would be a second reader
            await stream.read_until(ran("fleet-input-1"))
        assert reads.most == 1, "one Redis reader per worker, not one per subscriber"
        events = (await client.get(f"{worker}/events")).json()["events"]
        answer = "".join(e["text"] for e in events if e["type"] == "text_delta")
        assert answer == "You said: over redis"
        assert sum(e["type"] == "run_started" for e in events) == 1
        for stream in streams:
            got = [m.json() for m in stream.parser.messages]
            assert got == events[: len(got)]
        await asyncio.gather(*(s.close() for s in streams))
        assert len(state(app).hubs) == 0
        listing = (await client.get("/api/workers")).json()
        assert {(w["runtime_id"], w["kind"]) for w in listing["workers"]} == {("fleet", "fleet")}
        transcript = (await client.get(f"{worker}/transcript")).json()["entries"]
        assert [e["text"] for e in transcript] == ["over redis", "You said: over redis"]
        stopped = (await client.post(f"{worker}/stop")).json()
        assert stopped["state"] in ("stopping", "stopped")
    finally:
        await member.stop()
