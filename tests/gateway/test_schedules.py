"""Schedules as routes, on the embedded runtime and on a fleet runtime (real Redis, a member in
this process running arq): typed refusals that create nothing, an `at` firing once as an ordinary
input, DELETE and stop ending a schedule, a cron firing on its minutes by a controlled clock,
and embedded schedules kept across a gateway restart on the SQLite store."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime_worker.member import Member
from runtime_worker.runtime import Runtime
from tests.gateway.support import running_app, settings_for, state
from tests.helpers import wait_until

MONDAY_10_UTC = datetime(2030, 1, 7, 10, 0, tzinfo=UTC).timestamp()


@dataclass
class Target:
    client: httpx.AsyncClient
    runtime: Runtime
    worker_id: str
    path: str  # the Worker's path

    async def events(self) -> list[dict[str, Any]]:
        page = (await self.client.get(f"{self.path}/events", params={"limit": 1000})).json()
        events: list[dict[str, Any]] = page["events"]
        return events

    async def inputs(self) -> list[str]:
        return [e["input_id"] for e in await self.events() if e["type"] == "user_message"]

    async def schedules(self) -> list[dict[str, Any]]:
        listed = await self.client.get(f"{self.path}/schedules")
        assert listed.status_code == 200, listed.text
        found: list[dict[str, Any]] = listed.json()["schedules"]
        return found


@pytest.fixture(params=["backend-internal", "fleet"])
async def target(
    request: pytest.FixtureRequest, namespace: str, redis_url: str
) -> AsyncIterator[Target]:
    runtime_id = str(request.param)
    fleet: dict[str, Any] = {}
    if runtime_id == "fleet":
        fleet = {"redis_url": redis_url, "fleets": ["fleet"], "runtime_id": "fleet"}
        fleet |= {"heartbeat_ms": 100, "lease_ttl_ms": 1000, "schedule_poll_s": 0.1}
    settings = settings_for(namespace, **fleet)
    member = Member(settings) if fleet else None
    if member is not None:
        await member.start()
    try:
        async with running_app(settings) as (app, client):
            base = f"/api/runtimes/{runtime_id}/workers"
            created = await client.post(base, json={"display_name": "sched"})
            assert created.status_code == 201, created.text
            worker_id = created.json()["worker_id"]
            runtime = state(app).runtimes().get(runtime_id)
            yield Target(client, runtime, worker_id, f"{base}/{worker_id}")
    finally:
        if member is not None:
            await member.stop()


def _iso(delta_s: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=delta_s)).isoformat()


BAD_BODIES: list[dict[str, Any]] = [
    {"text": "both", "at": _iso(3600), "cron": "* * * * *"},
    {"text": "neither"},
    {"text": "bad cron", "cron": "every minute"},
    {"text": "six fields", "cron": "*/5 * * * * *"},
    {"text": "no such day", "cron": "0 0 30 2 *"},
    {"text": "bad zone", "cron": "0 9 * * *", "timezone": "Mars/Olympus_Mons"},
    {"text": "zone with at", "at": _iso(3600), "timezone": "UTC"},
    {"text": "past", "at": _iso(-60)},
    {"text": "too far", "at": _iso(400 * 86_400)},
    {"text": "no offset", "at": "2031-01-01T09:00:00"},
    {"text": "not a time", "at": "tomorrow"},
    {"text": "   ", "cron": "@daily"},
]


async def test_bad_bodies_are_typed_422_and_create_nothing(target: Target) -> None:
    for body in BAD_BODIES:
        answer = await target.client.post(f"{target.path}/schedules", json=body)
        assert answer.status_code == 422, (body, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "invalid_input" and error["retryable"] is False, body
    assert await target.schedules() == []
    assert await target.inputs() == []


async def test_unknown_worker_and_schedule_are_typed_404(target: Target) -> None:
    runtime_path = target.path.rsplit("/", 1)[0]
    unknown = f"{runtime_path}/01890000-0000-7000-8000-000000000000/schedules"
    for answer in (
        await target.client.post(unknown, json={"text": "hi", "cron": "@daily"}),
        await target.client.get(unknown),
        await target.client.delete(f"{unknown}/nope"),
    ):
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "worker_not_found"
    missing = await target.client.delete(f"{target.path}/schedules/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "schedule_not_found"


async def test_an_at_fires_once_as_an_ordinary_input_and_ends(target: Target) -> None:
    at = datetime.now(UTC) + timedelta(seconds=2)
    made = await target.client.post(
        f"{target.path}/schedules", json={"text": "at two seconds", "at": at.isoformat()}
    )
    assert made.status_code == 201, made.text
    schedule = made.json()
    assert schedule["next_fire_at"] == pytest.approx(at.timestamp())
    assert schedule["cron"] is None and schedule["timezone"] is None
    (listed,) = await target.schedules()
    assert listed == schedule
    input_id = f"at-{schedule['schedule_id']}-{int(at.timestamp())}"

    async def answered() -> bool:
        events = await target.events()
        return any(e["type"] == "run_finished" and e["input_id"] == input_id for e in events)

    await wait_until(answered, timeout_s=10, what="the scheduled input answered")
    assert await target.inputs() == [input_id]
    assert await target.schedules() == []  # a one-shot ends once it fired
    # Firing again (a late tick, a second member) sends nothing more.
    assert await target.runtime.schedules.fire_due(at.timestamp() + 5) == 0
    assert await target.inputs() == [input_id]


async def test_delete_stops_a_schedule_and_stop_ends_them(target: Target) -> None:
    made = await target.client.post(
        f"{target.path}/schedules", json={"text": "every minute", "cron": "* * * * *"}
    )
    assert made.status_code == 201, made.text
    schedule_id = made.json()["schedule_id"]
    assert made.json()["next_fire_at"] % 60 == 0 and made.json()["timezone"] == "UTC"
    gone = await target.client.delete(f"{target.path}/schedules/{schedule_id}")
    assert gone.status_code == 204 and gone.content == b""
    assert await target.schedules() == []
    again = await target.client.delete(f"{target.path}/schedules/{schedule_id}")
    assert again.status_code == 404
    far = datetime.now(UTC).timestamp() + 3 * 86_400
    assert await target.runtime.schedules.fire_due(far) == 0

    for cron in ("@hourly", "0 9 * * mon-fri"):
        made = await target.client.post(
            f"{target.path}/schedules", json={"text": "until stopped", "cron": cron}
        )
        assert made.status_code == 201, made.text
    assert len(await target.schedules()) == 2
    stopped = await target.client.post(f"{target.path}/stop")
    assert stopped.status_code == 200, stopped.text
    assert await target.schedules() == []
    assert await target.runtime.schedules.fire_due(far) == 0
    assert await target.inputs() == []
    refused = await target.client.post(
        f"{target.path}/schedules", json={"text": "too late", "cron": "@daily"}
    )
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "worker_stopped"


async def test_a_stopped_workers_schedule_is_removed_at_its_next_firing(target: Target) -> None:
    """A schedule its Worker's stop did not see (stored by another path) ends when it fires."""
    made = await target.client.post(
        f"{target.path}/schedules", json={"text": "tick", "cron": "* * * * *"}
    )
    schedule_id = made.json()["schedule_id"]
    raw, _ = await target.runtime.store.schedules()
    await target.client.post(f"{target.path}/stop")
    await target.runtime.store.put_schedule(schedule_id, raw[schedule_id])
    assert [s["schedule_id"] for s in await target.schedules()] == [schedule_id]
    assert await target.runtime.schedules.fire_due(datetime.now(UTC).timestamp() + 120) == 0
    assert await target.schedules() == []


async def test_embedded_cron_fires_on_its_minutes_by_a_controlled_clock(
    namespace: str,
) -> None:
    """The embedded loop reads the schedules' clock: set it, poke the loop, see those slots."""
    async with running_app(settings_for(namespace)) as (app, client):
        runtime = state(app).runtimes().get("backend-internal")
        now = [MONDAY_10_UTC]  # 15:30 in Kolkata (UTC+05:30)
        runtime.schedules.clock = lambda: now[0]
        created = await client.post(
            "/api/runtimes/backend-internal/workers", json={"display_name": "clocked"}
        )
        path = f"/api/runtimes/backend-internal/workers/{created.json()['worker_id']}"
        made = await client.post(
            f"{path}/schedules",
            json={"text": "half past", "cron": "5,35 * * * *", "timezone": "Asia/Kolkata"},
        )
        assert made.status_code == 201, made.text
        schedule_id = made.json()["schedule_id"]
        assert made.json()["next_fire_at"] == MONDAY_10_UTC + 5 * 60  # 15:35 local

        async def inputs() -> list[str]:
            page = (await client.get(f"{path}/events", params={"limit": 1000})).json()
            return [e["input_id"] for e in page["events"] if e["type"] == "user_message"]

        async def fired(count: int) -> bool:
            return len(await inputs()) >= count

        slots = [MONDAY_10_UTC + minutes * 60 for minutes in (5, 35, 65)]
        for count, moment in enumerate(slots, 1):
            now[0] = moment + 20  # twenty seconds into the slot's minute
            runtime.schedules.poke()
            await wait_until(functools.partial(fired, count), what=f"slot {count} fired")
            assert await inputs() == [f"cron-{schedule_id}-{int(s)}" for s in slots[:count]]
        (listed,) = (await client.get(f"{path}/schedules")).json()["schedules"]
        assert listed["next_fire_at"] == MONDAY_10_UTC + 95 * 60
        now[0] = MONDAY_10_UTC + 80 * 60  # between slots: nothing
        assert await runtime.schedules.fire_due(now[0]) == 0
        assert (await client.delete(f"{path}/schedules/{schedule_id}")).status_code == 204
        now[0] = MONDAY_10_UTC + 200 * 60
        assert await runtime.schedules.fire_due(now[0]) == 0
        assert len(await inputs()) == 3


async def test_embedded_schedules_survive_a_gateway_restart(namespace: str, tmp_path: Path) -> None:
    settings = settings_for(namespace, data_dir=tmp_path)
    async with running_app(settings) as (_app, client):
        created = await client.post(
            "/api/runtimes/backend-internal/workers", json={"display_name": "durable"}
        )
        path = f"/api/runtimes/backend-internal/workers/{created.json()['worker_id']}"
        for body in (
            {"text": "daily", "cron": "@daily", "timezone": "Europe/Paris"},
            {"text": "tomorrow", "at": _iso(86_400)},
        ):
            made = await client.post(f"{path}/schedules", json=body)
            assert made.status_code == 201, made.text
        before = (await client.get(f"{path}/schedules")).json()["schedules"]
    async with running_app(settings) as (app, client):
        after = (await client.get(f"{path}/schedules")).json()["schedules"]
        assert after == before and len(after) == 2
        runtime = state(app).runtimes().get("backend-internal")
        daily = before[0]
        # The reopened loop fires it: its first slot, by the schedules' clock.
        runtime.schedules.clock = lambda: daily["next_fire_at"] + 1
        runtime.schedules.poke()

        async def fired() -> bool:
            page = (await client.get(f"{path}/events", params={"limit": 1000})).json()
            return any(e["type"] == "user_message" for e in page["events"])

        await wait_until(fired, what="the daily slot fired after the restart")
        await client.delete(f"{path}/schedules/{daily['schedule_id']}")
    async with running_app(settings) as (_app, client):
        (left,) = (await client.get(f"{path}/schedules")).json()["schedules"]
        assert left == before[1]
