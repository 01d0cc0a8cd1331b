"""The run log every Store keeps: written by `finish_run` itself, newest first, bounded like
the transcript (a run's final transcript entry is its record), each run with its attempt,
start and end times, usage and text."""

from __future__ import annotations

import pytest

from runtime_worker.store.base import RunOutcome, Store
from shared.errors import WorkerNotFound
from shared.ids import new_id
from shared.models import RunResult
from shared.timeutil import now_s
from tests.contract.test_store_contract import MEMBER, _hosted, _run_once, _submit, _take


async def test_runs_are_listed_newest_first_and_page_backwards(store: Store) -> None:
    record, epoch = await _hosted(store)
    inputs = []
    for i in range(3):
        await _submit(store, record.worker_id, f"q{i}")
        inputs.append((await _run_once(store, record.worker_id, epoch, f"a{i}")).input_id)
    page = await store.read_runs(record.worker_id, 2, None)
    assert [run.input_id for _, run in page.runs] == [inputs[2], inputs[1]]
    assert [run.text for _, run in page.runs] == ["a2", "a1"]
    assert page.next_before is not None
    older = await store.read_runs(record.worker_id, 2, page.next_before)
    assert [run.input_id for _, run in older.runs] == [inputs[0]]
    assert older.next_before is None
    run = page.runs[0][1]
    assert run.state == "finished" and run.result is RunResult.FINISHED and run.attempt == 1
    assert (run.usage.input_tokens, run.usage.output_tokens) == (3, 1)
    assert run.finished_at is not None and 0 < run.started_at <= run.finished_at


async def test_the_run_log_is_bounded_like_the_transcript(store: Store) -> None:
    record, epoch = await _hosted(store, transcript_maxlen=4)  # two entries a run
    for i in range(4):
        await _submit(store, record.worker_id, f"q{i}")
        await _run_once(store, record.worker_id, epoch, f"a{i}")
    page = await store.read_runs(record.worker_id, 10, None)
    assert [run.text for _, run in page.runs] == ["a3", "a2"]
    assert page.next_before is None


async def test_a_run_is_found_by_id_with_its_result_and_reason(store: Store) -> None:
    record, epoch = await _hosted(store)
    await _submit(store, record.worker_id)
    taken = await _take(store, record.worker_id, epoch)
    started_at = now_s()
    outcome = RunOutcome(RunResult.CANCELLED, "part", 2, 1, reason="cancelled_by_user")
    await store.finish_run(
        record.worker_id, epoch, taken.item, outcome, started_at, run_id=taken.claim.run_id
    )
    found = await store.find_run(record.worker_id, taken.claim.run_id)
    assert found is not None
    assert (found.run_id, found.input_id) == (taken.claim.run_id, taken.item.input_id)
    assert (found.result, found.reason, found.text) == (
        RunResult.CANCELLED,
        "cancelled_by_user",
        "part",
    )
    assert await store.find_run(record.worker_id, new_id()) is None
    with pytest.raises(WorkerNotFound):
        await store.find_run(new_id(), taken.claim.run_id)
    with pytest.raises(WorkerNotFound):
        await store.read_runs(new_id(), 10, None)


async def test_a_rerun_by_the_next_host_is_logged_once_as_attempt_two(store: Store) -> None:
    record, epoch = await _hosted(store)
    await _submit(store, record.worker_id)
    first = await store.take_run(record.worker_id, MEMBER, epoch, new_id(), 1000.0, 0)
    await store.release_many({record.worker_id: epoch}, MEMBER)
    epoch2 = await store.acquire(record.worker_id, "m2", 60_000)
    assert first is not None and epoch2 is not None
    again = await store.take_run(record.worker_id, "m2", epoch2, new_id(), 2000.5, 0)
    assert again is not None
    outcome = RunOutcome(RunResult.FINISHED, "done")
    await store.finish_run(
        record.worker_id, epoch2, again.item, outcome, 2001.0, run_id=again.claim.run_id
    )
    page = await store.read_runs(record.worker_id, 10, None)
    assert [(run.run_id, run.attempt) for _, run in page.runs] == [(again.claim.run_id, 2)]
    assert page.runs[0][1].started_at == 2000.5 and page.runs[0][1].finished_at == 2001.0
    assert await store.find_run(record.worker_id, first.claim.run_id) is None
    done = await store.get_worker(record.worker_id)
    assert done.run_started_at is None


async def test_the_running_run_is_on_the_record_with_its_start(store: Store) -> None:
    record, epoch = await _hosted(store)
    await _submit(store, record.worker_id)
    taken = await store.take_run(record.worker_id, MEMBER, epoch, new_id(), 1234.25, 0)
    assert taken is not None
    running = await store.get_worker(record.worker_id)
    assert (running.run_id, running.run_started_at) == (taken.claim.run_id, 1234.25)
    assert (await store.read_runs(record.worker_id, 10, None)).runs == []
