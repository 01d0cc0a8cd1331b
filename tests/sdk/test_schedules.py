"""Schedules through the SDK (`Client`, `AsyncClient`) and the CLI (`yoi schedule`, `schedules`,
`unschedule`) against a real gateway process, on its embedded runtime and on a fleet runtime
(a `yoi runtime` process): typed answers and errors, and an `at` that fires as an input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from gateway.client import (
    AsyncClient,
    Client,
    InvalidInput,
    ScheduleNotFound,
    WorkerNotFound,
    WorkerStopped,
)
from shared.schedules import Schedule
from tests.cli.support import yoi
from tests.helpers import wait_until_sync
from tests.sdk.conftest import TOKEN, Gateway

pytestmark = pytest.mark.slow

RUNTIMES = ["backend-internal", "fleet"]
UNKNOWN_WORKER = "01890000-0000-7000-8000-000000000000"


@pytest.fixture
def client(gateway: Gateway) -> Client:
    return Client(gateway.url, TOKEN)


@pytest.mark.parametrize("runtime_id", RUNTIMES)
def test_an_at_schedule_fires_as_an_input_and_ends(client: Client, runtime_id: str) -> None:
    with client:
        worker = client.create_worker(runtime_id, "sdk-at")
        at = datetime.now(UTC) + timedelta(seconds=2)
        made = client.create_schedule(runtime_id, worker.worker_id, "ring", at=at)
        assert isinstance(made, Schedule) and made.at == at and made.cron is None
        assert client.list_schedules(runtime_id, worker.worker_id) == [made]
        input_id = f"at-{made.schedule_id}-{int(at.timestamp())}"

        def answered() -> bool:
            page = client.events(runtime_id, worker.worker_id, limit=1000)
            return any(e.type == "run_finished" and e.input_id == input_id for e in page.events)

        wait_until_sync(answered, timeout_s=10, what="the scheduled input answered")
        assert client.list_schedules(runtime_id, worker.worker_id) == []
        texts = [e.text for e in client.transcript(runtime_id, worker.worker_id).entries]
        assert "ring" in texts


@pytest.mark.parametrize("runtime_id", RUNTIMES)
def test_cron_list_delete_and_typed_errors(client: Client, runtime_id: str) -> None:
    with client:
        worker = client.create_worker(runtime_id, "sdk-cron")
        made = client.create_schedule(
            runtime_id,
            worker.worker_id,
            "weekdays",
            cron="30 8 * jan-jun mon-fri",
            timezone="Europe/Paris",
        )
        assert made.cron == "30 8 * jan-jun mon-fri" and made.timezone == "Europe/Paris"
        assert made.next_fire_at > datetime.now(UTC).timestamp()
        (listed,) = client.list_schedules(runtime_id, worker.worker_id)
        assert listed.schedule_id == made.schedule_id
        client.delete_schedule(runtime_id, worker.worker_id, made.schedule_id)
        assert client.list_schedules(runtime_id, worker.worker_id) == []
        with pytest.raises(ScheduleNotFound) as missing:
            client.delete_schedule(runtime_id, worker.worker_id, made.schedule_id)
        assert missing.value.retryable is False
        # Refused by the gateway (422), and before sending (the body's own form).
        for bad in (
            {"cron": "every minute"},
            {"cron": "@daily", "timezone": "Nowhere/Here"},
            {"at": datetime.now(UTC) - timedelta(minutes=1)},
        ):
            with pytest.raises(InvalidInput):
                client.create_schedule(runtime_id, worker.worker_id, "bad", **bad)
        with pytest.raises(InvalidInput):
            client.create_schedule(runtime_id, worker.worker_id, "neither")
        with pytest.raises(InvalidInput):
            client.create_schedule(runtime_id, worker.worker_id, "naive", at="2031-01-01T09:00")
        assert client.list_schedules(runtime_id, worker.worker_id) == []
        with pytest.raises(WorkerNotFound):
            client.list_schedules(runtime_id, UNKNOWN_WORKER)
        client.create_schedule(runtime_id, worker.worker_id, "ends", cron="@hourly")
        client.stop(runtime_id, worker.worker_id)
        assert client.list_schedules(runtime_id, worker.worker_id) == []
        with pytest.raises(WorkerStopped):
            client.create_schedule(runtime_id, worker.worker_id, "late", cron="@hourly")


@pytest.mark.parametrize("runtime_id", RUNTIMES)
async def test_the_async_client_schedules_alike(gateway: Gateway, runtime_id: str) -> None:
    async with AsyncClient(gateway.url, TOKEN) as client:
        worker = await client.create_worker(runtime_id, "sdk-async")
        at = datetime.now(UTC) + timedelta(days=1)
        made = await client.create_schedule(
            runtime_id, worker.worker_id, "tomorrow", at=at.isoformat()
        )
        assert made.next_fire_at == pytest.approx(at.timestamp())
        assert await client.list_schedules(runtime_id, worker.worker_id) == [made]
        await client.delete_schedule(runtime_id, worker.worker_id, made.schedule_id)
        assert await client.list_schedules(runtime_id, worker.worker_id) == []
        with pytest.raises(ScheduleNotFound):
            await client.delete_schedule(runtime_id, worker.worker_id, made.schedule_id)
        with pytest.raises(InvalidInput):
            await client.create_schedule(runtime_id, worker.worker_id, "both", at=at, cron="@daily")


def test_the_cli_schedules_lists_and_unschedules(client: Client, gateway: Gateway) -> None:
    """Through the SDK, so one runtime shows it (the SDK's tests above cover both)."""
    runtime_id = "fleet"
    env = {**gateway.env, "YOI_GATEWAY": gateway.url}
    with client:
        client.create_worker(runtime_id, "cli-sched")
    ref = f"cli-sched@{runtime_id}"
    made = yoi(
        "schedule",
        ref,
        "good morning",
        "--cron",
        "0 9 * * *",
        "--timezone",
        "Asia/Tokyo",
        "--json",
        env=env,
    )
    assert made.returncode == 0, made.stderr
    schedule = Schedule.model_validate_json(made.stdout)
    assert schedule.cron == "0 9 * * *" and schedule.timezone == "Asia/Tokyo"
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    once = yoi("schedule", ref, "in an hour", "--at", at, env=env)
    assert once.returncode == 0, once.stderr
    assert once.stdout.startswith("scheduled ") and "next " in once.stdout

    listed = yoi("schedules", ref, env=env)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["SCHEDULE", "WHEN", "NEXT", "TEXT"] and len(rows) == 2
    assert schedule.schedule_id in rows[0] and "Asia/Tokyo" in rows[0]
    as_json = json.loads(yoi("schedules", ref, "--json", env=env).stdout)
    assert as_json["schedules"][0]["schedule_id"] == schedule.schedule_id

    gone = yoi("unschedule", ref, schedule.schedule_id, env=env)
    assert gone.returncode == 0 and schedule.schedule_id in gone.stdout, gone.stderr
    again = yoi("unschedule", ref, schedule.schedule_id, env=env)
    assert again.returncode == 4 and "schedule_not_found" in again.stderr
    assert len(json.loads(yoi("schedules", ref, "--json", env=env).stdout)["schedules"]) == 1

    neither = yoi("schedule", ref, "text", env=env)
    both = yoi("schedule", ref, "text", "--at", at, "--cron", "@daily", env=env)
    assert neither.returncode == both.returncode == 2
    bad = yoi("schedule", ref, "text", "--cron", "every minute", env=env)
    assert bad.returncode == 1 and "invalid_input" in bad.stderr
