"""A turn never outlives the run that started it: a turn left streaming after its drain ended
would write beside the next attempt of the same input (the failover test's late writes)."""

from __future__ import annotations

import asyncio

from runtime_worker._hosted import Hosted
from runtime_worker._turn_runner import TurnRunner
from runtime_worker.profiles import Profile
from runtime_worker.store.base import TakenRun, WorkerRecord
from runtime_worker.store.memory import MemoryStore
from shared.errors import RuntimeUnavailable
from shared.events import Event, TextDelta
from shared.ids import new_id
from shared.models import Strategy
from shared.settings import Settings
from shared.timeutil import now_s
from tests.helpers import wait_until

SETTINGS = Settings(echo_delay_ms=5, flush_interval_ms=5)
PROFILE = Profile(name="assistant")


class CheckFails(MemoryStore):
    """A store whose cancel check fails, as Redis does while a primary fails over."""

    async def is_cancelled(self, worker_id: str, seq: int) -> bool:
        raise RuntimeUnavailable("the store is failing over")


def _turns() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "yoi-turn" and not t.done()]


async def _taken(store: MemoryStore) -> tuple[str, Hosted, TakenRun]:
    record = WorkerRecord(
        worker_id=new_id(), display_name="w", profile="assistant", created_at=now_s()
    )
    worker_id = (await store.create(record)).record.worker_id
    epoch = await store.acquire(worker_id, "m1", 0)
    assert epoch is not None
    await store.submit_input(worker_id, "word " * 40, new_id(), Strategy.ENQUEUE, now_s())
    taken = await store.take_run(worker_id, "m1", epoch, new_id(), now_s(), 0)
    assert taken is not None
    # A hint came while the drain was on: the runner checks for a cancel that raced the start.
    return worker_id, Hosted(epoch=epoch, profile=PROFILE, hinted=True), taken


async def _run_events(store: MemoryStore, worker_id: str, run_id: str) -> list[Event]:
    return [e for e in await store.read_events(worker_id, None, 1000) if e.run_id == run_id]


async def test_a_failed_cancel_check_at_the_start_lets_the_run_finish() -> None:
    store = CheckFails(SETTINGS)
    worker_id, hosted, taken = await _taken(store)
    runner = TurnRunner(store, runtime_id="rt", settings=SETTINGS)
    try:
        await runner.run(worker_id, hosted, PROFILE, taken)
        assert _turns() == []
        events = await _run_events(store, worker_id, taken.claim.run_id)
        assert [e.type for e in events].count("run_finished") == 1
        assert events[-1].type == "run_finished"
    finally:
        await runner.aclose()


async def test_a_cancelled_drain_ends_after_its_turn() -> None:
    store = MemoryStore(SETTINGS)
    worker_id, hosted, taken = await _taken(store)
    hosted.hinted = False
    runner = TurnRunner(store, runtime_id="rt", settings=SETTINGS)
    drain = asyncio.create_task(runner.run(worker_id, hosted, PROFILE, taken))
    try:

        async def streaming() -> bool:
            events = await _run_events(store, worker_id, taken.claim.run_id)
            return any(isinstance(e, TextDelta) for e in events)

        await wait_until(streaming, timeout_s=5, what="the turn streaming")
        drain.cancel()
        await asyncio.wait([drain])
        assert drain.cancelled()
        assert _turns() == []  # ended with the drain, not after it
        written = await _run_events(store, worker_id, taken.claim.run_id)
        await asyncio.sleep(0.05)  # settle-ok: a turn left running would write within 5 ms
        assert await _run_events(store, worker_id, taken.claim.run_id) == written
    finally:
        await runner.aclose()
