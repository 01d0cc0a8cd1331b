"""Schedules on a fleet runtime, through the `Runtime` boundary the gateway uses: an `at` two
seconds ahead fires exactly once with three member processes racing (arq's deferred job and
every member's housekeeping), and a cron fires on its minutes by the times the test chooses
(the scheduler's seconds-level hook), never after DELETE."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runtime_worker.runtime import Runtime
from runtime_worker.schedule import Scheduler
from shared.errors import ScheduleNotFound
from shared.events import RunFinished, UserMessage
from shared.schedules import CreateSchedule
from shared.settings import Settings
from tests.fleet.support import (
    Fleet,
    all_events,
    create_workers,
    of_type,
    store_of,
    wait_finished,
    wait_hosted,
    wait_members,
)
from tests.helpers import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.redis]

# Monday 2030-01-07, 09:00 in New York (UTC-05:00) is 14:00 UTC.
MONDAY_9_NY = datetime(2030, 1, 7, 14, 0, tzinfo=UTC).timestamp()
DAY_S = 86_400


async def test_an_at_two_seconds_ahead_fires_exactly_once_with_three_members(
    fleet: Fleet, client: Runtime
) -> None:
    names = ["m1", "m2", "m3"]
    for name in names:
        fleet.start(name)
    await wait_members(client, names)
    (worker_id,) = await create_workers(client, 1)
    await wait_hosted(client, [worker_id])
    at = datetime.now(UTC) + timedelta(seconds=2)
    made = await client.create_schedule(worker_id, CreateSchedule(text="in two seconds", at=at))
    assert made.next_fire_at == pytest.approx(at.timestamp())
    input_id = f"at-{made.schedule_id}-{int(at.timestamp())}"
    await wait_finished(client, {worker_id: {input_id}}, timeout_s=10)
    assert (await client.list_schedules(worker_id)).schedules == []

    # Everything that could fire it again has had its turn: its job is done, and housekeeping
    # (each second here, on whichever member takes the tick) ran a tick set after the firing.
    store = store_of(client)
    job_result = "arq:result:" + store.keys.arq_job_id("schedule", made.schedule_id)
    ticks = f"arq:result:{store.keys.arq_cron('housekeeping')}:*"
    fired_ms = int(datetime.now(UTC).timestamp() * 1000)

    async def settled() -> bool:
        if not await store.client.exists(job_result):
            return False
        async for key in store.client.scan_iter(match=ticks, count=1000):
            if int(str(key).rsplit(":", 1)[1]) > fired_ms:
                return True
        return False

    await wait_until(settled, timeout_s=10, what="the job done and a housekeeping tick since")
    events = await all_events(client, worker_id)
    assert [e.input_id for e in of_type(events, UserMessage)] == [input_id]
    assert len(of_type(events, RunFinished, input_id)) == 1


async def test_a_cron_fires_on_its_minutes_by_chosen_times_and_not_after_delete(
    client: Runtime, redis_url: str, namespace: str
) -> None:
    """No member runs here: the test is the only clock, driving the scheduler's hook."""
    (worker_id,) = await create_workers(client, 1)
    made = await client.create_schedule(
        worker_id,
        CreateSchedule(text="stand-up", cron="0 9 * * mon-fri", timezone="America/New_York"),
    )
    assert made.timezone == "America/New_York" and made.at is None
    scheduler = Scheduler(Settings(redis_url=redis_url, namespace=namespace), store_of(client))

    async def inputs() -> list[str]:
        return [e.input_id or "" for e in of_type(await all_events(client, worker_id), UserMessage)]

    monday, tuesday = MONDAY_9_NY, MONDAY_9_NY + DAY_S
    assert await scheduler.fire_recurring(int(monday) - 60) == 0  # a minute early: nothing
    assert await scheduler.fire_recurring(int(monday) + 30) == 1
    assert await scheduler.fire_recurring(int(monday) + 45) == 0  # the same slot: once
    assert await scheduler.fire_recurring(int(tuesday) + 10) == 1
    assert await scheduler.fire_recurring(int(tuesday) + 4 * DAY_S) == 0  # Saturday
    slots = [int(monday), int(tuesday)]
    assert await inputs() == [f"cron-{made.schedule_id}-{slot}" for slot in slots]
    (listed,) = (await client.list_schedules(worker_id)).schedules
    assert listed.next_fire_at == tuesday + DAY_S

    await client.delete_schedule(worker_id, made.schedule_id)
    with pytest.raises(ScheduleNotFound):
        await client.delete_schedule(worker_id, made.schedule_id)
    assert await scheduler.fire_recurring(int(tuesday + DAY_S) + 10) == 0
    assert len(await inputs()) == 2
