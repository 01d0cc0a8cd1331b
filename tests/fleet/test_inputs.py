"""The input path through a fleet: cancel in every phase, poison inputs, scheduled inputs."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from runtime_worker.runtime import Runtime
from runtime_worker.schedule import add_recurring, remove_recurring, schedule_input
from shared.events import ErrorEvent, RunFinished, TextDelta, TextDone, UserMessage
from shared.models import SendInput, WorkerState
from shared.settings import Settings
from tests.fleet.support import (
    Fleet,
    all_events,
    attempts,
    create_workers,
    finished_counts,
    of_type,
    store_of,
    wait_finished,
    wait_hosted,
    wait_members,
)
from tests.helpers import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.redis]


async def test_cancel_in_every_phase(fleet: Fleet, client: Runtime) -> None:
    (worker_id,) = await create_workers(client, 1)
    queued = await client.send_input(worker_id, SendInput(text="cancelled before pickup"))
    first = await client.cancel(worker_id)
    again = await client.cancel(worker_id)
    assert first.cancelled and again.cancelled
    assert (await client.get_worker(worker_id)).state is WorkerState.PENDING

    fleet.start("m1", provider="chaos")  # `/slow` below: the chaos provider's hook
    seen = await wait_finished(client, {worker_id: {queued.input_id}})
    events = seen[worker_id]
    (finished,) = of_type(events, RunFinished, queued.input_id)
    assert finished.result == "cancelled"
    assert of_type(events, TextDelta, queued.input_id) == []

    slow = await client.send_input(
        worker_id, SendInput(text="/slow this answer is cancelled mid stream " + "word " * 20)
    )

    async def streaming() -> bool:
        return bool(of_type(await all_events(client, worker_id), TextDelta, slow.input_id))

    await wait_until(streaming, timeout_s=10, what="the slow answer streaming")
    assert (await client.cancel(worker_id)).cancelled
    again = await client.cancel(worker_id)  # still cancelling, or already done: no error
    assert again.cancelled or again.state is WorkerState.IDLE
    seen = await wait_finished(client, {worker_id: {slow.input_id}}, timeout_s=5)
    events = seen[worker_id]
    (finished,) = of_type(events, RunFinished, slow.input_id)
    assert finished.result == "cancelled"
    after = events[events.index(finished) :]
    assert [e for e in after if e.type == "text_delta"] == []

    done = await client.send_input(worker_id, SendInput(text="answered in full"))
    await wait_finished(client, {worker_id: {done.input_id}})
    for _ in range(2):
        result = await client.cancel(worker_id)
        assert not result.cancelled
        assert result.state is WorkerState.IDLE
    assert finished_counts(await all_events(client, worker_id))[done.input_id] == 1


async def test_poison_input_is_dead_lettered(fleet: Fleet, client: Runtime) -> None:
    # It kills two hosts running it beside other turns (nothing counts), then a third running
    # it alone (its own crash: one delivery, the limit); the fourth dead-letters it.
    names = ["m1", "m2", "m3", "m4"]
    for name in names:
        fleet.start(name, max_deliveries="1", provider="chaos")
    await wait_members(client, names)
    (worker_id,) = await create_workers(client, 1)
    await wait_hosted(client, [worker_id])
    poison = await client.send_input(worker_id, SendInput(text="/crash the host"))
    seen = await wait_finished(client, {worker_id: {poison.input_id}}, timeout_s=30)
    events = seen[worker_id]
    (finished,) = of_type(events, RunFinished, poison.input_id)
    assert finished.result == "failed"
    assert finished.reason == "dead_letter"
    (error,) = of_type(events, ErrorEvent, poison.input_id)
    assert error.code == "dead_letter"
    assert attempts(events, poison.input_id) == [1, 2, 3, 4]
    crashed = [m for m in fleet.members.values() if not m.alive]
    assert [m.wait_exit() for m in crashed] == [70, 70, 70]

    after = await client.send_input(worker_id, SendInput(text="and now something normal"))
    seen = await wait_finished(client, {worker_id: {after.input_id}})
    (finished,) = of_type(seen[worker_id], RunFinished, after.input_id)
    assert finished.result == "finished"
    (done,) = of_type(seen[worker_id], TextDone, after.input_id)
    assert "and now something normal" in done.text


async def test_scheduled_input_fires_once_across_three_members(
    fleet: Fleet, client: Runtime, redis_url: str, namespace: str
) -> None:
    names = ["m1", "m2", "m3"]
    for name in names:
        fleet.start(name)
    await wait_members(client, names)
    (worker_id,) = await create_workers(client, 1)
    await wait_hosted(client, [worker_id])
    settings = Settings(redis_url=redis_url, namespace=namespace)
    send_at = datetime.now(UTC) + timedelta(seconds=1)
    input_id = await schedule_input(
        settings, "fleet", worker_id, "a scheduled hello", send_at=send_at, input_id="sched-1"
    )
    again = await schedule_input(
        settings, "fleet", worker_id, "a scheduled hello", send_at=send_at, input_id="sched-1"
    )
    assert input_id == again == "sched-1"
    seen = await wait_finished(client, {worker_id: {input_id}}, timeout_s=15)

    store = store_of(client)
    job_result = "arq:result:" + store.keys.arq_job_id("send", input_id)

    async def job_done() -> bool:
        queued = await store.client.zrangebyscore(store.keys.arq_queue(), "-inf", "+inf")
        return bool(await store.client.exists(job_result)) and not [
            job for job in queued if ":send:" in job
        ]

    await wait_until(job_done, timeout_s=10, what="the scheduled job settled")
    events = await all_events(client, worker_id)
    assert len(of_type(events, UserMessage, input_id)) == 1
    assert finished_counts(events)[input_id] == 1
    assert seen[worker_id]


async def test_recurring_input_fires_each_slot_once(
    fleet: Fleet, client: Runtime, redis_url: str, namespace: str
) -> None:
    names = ["m1", "m2", "m3"]
    for name in names:
        fleet.start(name)
    await wait_members(client, names)
    (worker_id,) = await create_workers(client, 1)
    await wait_hosted(client, [worker_id])
    settings = Settings(redis_url=redis_url, namespace=namespace)
    schedule_id = await add_recurring(
        settings, "fleet", worker_id, "every second", cron_expr="* * * * * *", schedule_id="tick"
    )

    async def fired_three() -> bool:
        events = await all_events(client, worker_id)
        return len({e.input_id for e in events if e.type == "run_finished"}) >= 3

    await wait_until(fired_three, timeout_s=15, what="three slots fired")
    assert await remove_recurring(settings, "fleet", schedule_id)
    events = await all_events(client, worker_id)
    sent = Counter(e.input_id for e in events if e.type == "user_message")
    assert all(n == 1 for n in sent.values()), sent
    assert all(str(i).startswith("cron-tick-") for i in sent)
    slots = sorted(int(str(i).rsplit("-", 1)[1]) for i in sent)
    assert len(set(slots)) == len(slots)
