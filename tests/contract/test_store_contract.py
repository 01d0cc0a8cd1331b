"""The behaviour every Store keeps (see runtime_worker/store/base.py for the why)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from runtime_worker.store.base import (
    QueuedInput,
    RunOutcome,
    Store,
    Submission,
    TakenRun,
    WakeUp,
    WorkerRecord,
)
from runtime_worker.store.bounds import DEDUPE_WINDOW
from shared.errors import (
    CursorExpired,
    InputIdConflict,
    InvalidInput,
    LeaseLost,
    ScopeConflict,
    WorkerBusy,
    WorkerNotFound,
    WorkerStopped,
)
from shared.events import TextDelta
from shared.ids import new_id
from shared.models import RunResult, ScopeEntry, ScopeMode, Strategy, TranscriptRole, WorkerState
from shared.settings import Settings
from shared.timeutil import now_s
from tests.contract.conftest import StoreFactory
from tests.helpers import wait_until

MEMBER = "m1"


async def _worker(store: Store, **fields: object) -> WorkerRecord:
    record = WorkerRecord(
        worker_id=new_id(),
        display_name="w",
        profile="assistant",
        created_at=now_s(),
        **fields,  # type: ignore[arg-type]
    )
    return (await store.create(record)).record


async def _hosted(store: Store, **fields: object) -> tuple[WorkerRecord, int]:
    record = await _worker(store, **fields)
    epoch = await store.acquire(record.worker_id, MEMBER, 60_000)
    assert epoch is not None
    return record, epoch


async def _submit(
    store: Store,
    worker_id: str,
    text: str = "hi",
    strategy: Strategy = Strategy.ENQUEUE,
    input_id: str | None = None,
) -> Submission:
    return await store.submit_input(worker_id, text, input_id or new_id(), strategy, now_s())


async def _take(store: Store, worker_id: str, epoch: int, member: str = MEMBER) -> TakenRun:
    taken = await store.take_run(worker_id, member, epoch, new_id(), now_s(), 0)
    assert taken is not None
    return taken


async def _finish(
    store: Store, worker_id: str, epoch: int, taken: TakenRun, outcome: RunOutcome
) -> bool:
    run_id = taken.claim.run_id
    return await store.finish_run(worker_id, epoch, taken.item, outcome, now_s(), run_id=run_id)


async def _run_once(store: Store, worker_id: str, epoch: int, text: str = "answer") -> QueuedInput:
    taken = await _take(store, worker_id, epoch)
    item, claim = taken.item, taken.claim
    await store.append_events(
        worker_id,
        epoch,
        [
            TextDelta(
                worker_id=worker_id,
                ts=now_s(),
                run_id=claim.run_id,
                input_id=item.input_id,
                text=text,
            )
        ],
        run_id=claim.run_id,
    )
    await _finish(store, worker_id, epoch, taken, RunOutcome(RunResult.FINISHED, text, 3, 1))
    return item


async def test_create_get_list(store: Store) -> None:
    record = await _worker(store)
    got = await store.get_worker(record.worker_id)
    assert got.state is WorkerState.PENDING and got.display_name == "w"
    assert record.worker_id in {r.worker_id for r in await store.list_workers()}
    events = await store.read_events(record.worker_id, None, 10)
    assert [e.type for e in events] == ["state_changed"]


async def test_unknown_worker(store: Store) -> None:
    with pytest.raises(WorkerNotFound):
        await store.get_worker(new_id())
    with pytest.raises(WorkerNotFound):
        await _submit(store, new_id())


async def test_acquire_moves_pending_to_idle_and_bumps_epoch(store: Store) -> None:
    record = await _worker(store)
    first = await store.acquire(record.worker_id, MEMBER, 60_000)
    assert first is not None
    assert await store.acquire(record.worker_id, "m2", 60_000) is None  # held
    await store.release_many({record.worker_id: first}, MEMBER)
    second = await store.acquire(record.worker_id, "m2", 60_000)
    assert second is not None and second > first
    got = await store.get_worker(record.worker_id)
    assert got.state is WorkerState.IDLE and got.host == "m2" and got.epoch == second


async def test_full_run_writes_events_in_order(store: Store) -> None:
    record, epoch = await _hosted(store)
    sub = await _submit(store, record.worker_id, "hello")
    await _run_once(store, record.worker_id, epoch, "hi there")
    events = await store.read_events(record.worker_id, sub.cursor, 100)
    kinds = [e.type for e in events if e.type != "state_changed"]
    assert kinds == [
        "user_message",
        "run_started",
        "text_delta",
        "text_done",
        "usage",
        "run_finished",
    ]
    assert len({e.cursor for e in events}) == len(events)
    finished = events[-2] if events[-1].type == "state_changed" else events[-1]
    assert finished.type == "run_finished" and finished.result is RunResult.FINISHED
    got = await store.get_worker(record.worker_id)
    assert got.state is WorkerState.IDLE and got.queue_depth == 0
    assert got.usage.runs == 1 and got.usage.input_tokens == 3 and got.usage.output_tokens == 1
    assert await store.take_run(record.worker_id, MEMBER, epoch, new_id(), now_s(), 0) is None


async def test_reject_refuses_busy_worker_and_changes_nothing(store: Store) -> None:
    record, _ = await _hosted(store)
    await _submit(store, record.worker_id, strategy=Strategy.REJECT)
    before = await store.last_cursor(record.worker_id)
    with pytest.raises(WorkerBusy):
        await _submit(store, record.worker_id, strategy=Strategy.REJECT)
    assert await store.last_cursor(record.worker_id) == before
    assert (await store.get_worker(record.worker_id)).next_seq == 1


async def test_concurrent_rejects_accept_exactly_one(store: Store) -> None:
    record, _ = await _hosted(store)
    results = await asyncio.gather(
        *(_submit(store, record.worker_id, strategy=Strategy.REJECT) for _ in range(20)),
        return_exceptions=True,
    )
    accepted = [r for r in results if not isinstance(r, BaseException)]
    assert len(accepted) == 1
    assert all(isinstance(r, WorkerBusy) for r in results if isinstance(r, BaseException))


async def test_enqueue_keeps_order(store: Store) -> None:
    record, epoch = await _hosted(store)
    subs = [await _submit(store, record.worker_id, f"m{i}") for i in range(3)]
    seen = [(await _run_once(store, record.worker_id, epoch)).input_id for _ in subs]
    assert seen == [s.input_id for s in subs]


async def test_duplicate_input_id_answers_the_same(store: Store) -> None:
    record, _ = await _hosted(store)
    first = await _submit(store, record.worker_id, input_id="client-key-1")
    again = await _submit(
        store, record.worker_id, input_id="client-key-1", strategy=Strategy.REJECT
    )
    assert (again.input_id, again.cursor, again.seq) == (first.input_id, first.cursor, first.seq)
    assert again.duplicate and not first.duplicate
    assert (await store.get_worker(record.worker_id)).next_seq == 1


async def test_interrupt_cancels_everything_unfinished(store: Store) -> None:
    record, _epoch = await _hosted(store)
    first = await _submit(store, record.worker_id)
    await _submit(store, record.worker_id)
    third = await _submit(store, record.worker_id, strategy=Strategy.INTERRUPT)
    assert await store.is_cancelled(record.worker_id, first.seq)
    assert not await store.is_cancelled(record.worker_id, third.seq)


async def test_cancel_targets_the_head_and_is_idempotent(store: Store) -> None:
    record, _epoch = await _hosted(store)
    assert not (await store.cancel(record.worker_id)).cancelled  # nothing to cancel
    first = await _submit(store, record.worker_id)
    second = await _submit(store, record.worker_id)
    assert (await store.cancel(record.worker_id)).cancelled
    assert (await store.cancel(record.worker_id)).cancelled  # again: same answer, no new effect
    assert await store.is_cancelled(record.worker_id, first.seq)
    assert not await store.is_cancelled(record.worker_id, second.seq)


async def test_stale_epoch_writes_nothing(store: Store) -> None:
    record, epoch = await _hosted(store)
    await _submit(store, record.worker_id)
    taken = await _take(store, record.worker_id, epoch)
    await store.release_many({record.worker_id: epoch}, MEMBER)
    assert await store.acquire(record.worker_id, "m2", 60_000) is not None
    before = await store.last_cursor(record.worker_id)
    delta = TextDelta(worker_id=record.worker_id, ts=now_s(), text="stale")
    with pytest.raises(LeaseLost):
        await store.append_events(record.worker_id, epoch, [delta], run_id=taken.claim.run_id)
    with pytest.raises(LeaseLost):
        await store.take_run(record.worker_id, MEMBER, epoch, new_id(), now_s(), 0)
    with pytest.raises(LeaseLost):
        await _finish(store, record.worker_id, epoch, taken, RunOutcome(RunResult.FINISHED, "x"))
    assert await store.last_cursor(record.worker_id) == before


def _delta(worker_id: str, taken: TakenRun, text: str) -> TextDelta:
    ids = {"run_id": taken.claim.run_id, "input_id": taken.item.input_id}
    return TextDelta(worker_id=worker_id, ts=now_s(), text=text, **ids)


async def test_a_stale_runs_append_and_finish_are_refused(store: Store) -> None:
    """The run fence, beside the epoch's: a run taken again since (here by the same member
    under the same epoch, as after its drain ended while the input stayed unfinished) or
    finished writes nothing more, so no event of a run follows the next attempt's start."""
    record, epoch = await _hosted(store)
    wid = record.worker_id
    await _submit(store, wid, "one")
    first = await _take(store, wid, epoch)
    second = await _take(store, wid, epoch)
    assert (second.item.seq, second.claim.attempt) == (first.item.seq, 2)
    before = await store.last_cursor(wid)
    with pytest.raises(LeaseLost):
        await store.append_events(
            wid, epoch, [_delta(wid, first, "late")], run_id=first.claim.run_id
        )
    with pytest.raises(LeaseLost):
        await _finish(store, wid, epoch, first, RunOutcome(RunResult.FINISHED, "late"))
    assert await store.last_cursor(wid) == before
    current = await store.get_worker(wid)
    assert (current.run_id, current.done_seq, current.usage.runs) == (second.claim.run_id, 0, 0)

    await store.append_events(
        wid, epoch, [_delta(wid, second, "on time")], run_id=second.claim.run_id
    )
    await _finish(store, wid, epoch, second, RunOutcome(RunResult.FINISHED, "on time"))
    finished = await store.last_cursor(wid)
    with pytest.raises(LeaseLost):  # finished: its run is over
        await store.append_events(
            wid, epoch, [_delta(wid, second, "late")], run_id=second.claim.run_id
        )
    with pytest.raises(LeaseLost):
        await _finish(store, wid, epoch, second, RunOutcome(RunResult.FINISHED, "again"))
    assert await store.last_cursor(wid) == finished
    events = await store.read_events(wid, None, 100)
    assert [e.type for e in events].count("run_finished") == 1
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["on time"]


async def test_a_write_ahead_of_a_take_that_confirmed_nothing_is_refused(store: Store) -> None:
    """A run's write made as one started ahead of its take (`ahead=True`) goes in only after a
    take that confirmed it (`claim.ahead`); a plain take confirms nothing, so such a write of
    its current run writes nothing, while its plain writes do."""
    record, epoch = await _hosted(store)
    wid = record.worker_id
    await _submit(store, wid, "one")
    taken = await _take(store, wid, epoch)
    assert not taken.claim.ahead
    before = await store.last_cursor(wid)
    with pytest.raises(LeaseLost):
        await store.append_events(
            wid, epoch, [_delta(wid, taken, "ahead")], run_id=taken.claim.run_id, ahead=True
        )
    assert await store.last_cursor(wid) == before
    await store.append_events(wid, epoch, [_delta(wid, taken, "plain")], run_id=taken.claim.run_id)
    events = await store.read_events(wid, before, 100)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["plain"]


async def test_renew_reports_lost_leases(store: Store) -> None:
    record, epoch = await _hosted(store)
    assert await store.renew(MEMBER, {record.worker_id: epoch}, 60_000) == {record.worker_id: True}
    await store.release_many({record.worker_id: epoch}, MEMBER)
    assert await store.renew(MEMBER, {record.worker_id: epoch}, 60_000) == {record.worker_id: False}


async def test_stop_drains_then_stops_and_refuses_input(store: Store) -> None:
    record, epoch = await _hosted(store)
    sub = await _submit(store, record.worker_id)
    stopping = await store.request_stop(record.worker_id)
    assert stopping.state is WorkerState.STOPPING
    assert await store.is_cancelled(record.worker_id, sub.seq)
    with pytest.raises(WorkerStopped):
        await _submit(store, record.worker_id)
    taken = await _take(store, record.worker_id, epoch)
    assert taken.claim.cancelled
    await _finish(store, record.worker_id, epoch, taken, RunOutcome(RunResult.CANCELLED, ""))
    assert (await store.get_worker(record.worker_id)).state is WorkerState.STOPPED
    idle = await _worker(store)
    assert (await store.request_stop(idle.worker_id)).state is WorkerState.STOPPED


async def test_cursor_reads_are_exclusive_and_resumable(store: Store) -> None:
    record, epoch = await _hosted(store)
    await _submit(store, record.worker_id)
    await _run_once(store, record.worker_id, epoch)
    everything = await store.read_events(record.worker_id, None, 100)
    middle = everything[2].cursor
    rest = await store.read_events(record.worker_id, middle, 100)
    assert [e.cursor for e in rest] == [e.cursor for e in everything[3:]]
    assert await store.last_cursor(record.worker_id) == everything[-1].cursor
    with pytest.raises(InvalidInput):
        await store.read_events(record.worker_id, "not-a-cursor", 10)


async def test_tail_events_returns_on_write_and_times_out(store: Store) -> None:
    record, _epoch = await _hosted(store)
    last = await store.last_cursor(record.worker_id)
    assert await store.tail_events(record.worker_id, last, 10, 50) == []
    waiter = asyncio.create_task(store.tail_events(record.worker_id, last, 10, 5000))
    await _submit(store, record.worker_id, "wake")
    events = await asyncio.wait_for(waiter, 5)
    assert events and events[0].type == "user_message"


async def test_trimmed_cursor_expires_with_oldest_cursor(make_store: StoreFactory) -> None:
    store = make_store(Settings(events_maxlen=10))
    record, epoch = await _hosted(store)
    first_cursor = (await store.read_events(record.worker_id, None, 1))[0].cursor
    for _ in range(40):
        await _submit(store, record.worker_id)
        await _run_once(store, record.worker_id, epoch)
    with pytest.raises(CursorExpired) as caught:
        await store.read_events(record.worker_id, first_cursor, 10)
    oldest = caught.value.oldest_cursor
    resumed = await store.read_events(record.worker_id, oldest, 1000)
    retained = await store.read_events(record.worker_id, None, 1000)
    assert resumed == retained and len(retained) == 10  # from the oldest retained, exactly
    # One rule in every store: the oldest cursor is the id right before the first retained
    # event (the stores once disagreed on the boundary: the last trimmed event's cursor).
    ms, seq = (int(part) for part in retained[0].cursor.partition("-")[::2])
    assert oldest == (f"{ms}-{seq - 1}" if seq else f"{ms - 1}-{2**64 - 1}")
    with pytest.raises(CursorExpired):
        await store.read_events(record.worker_id, "0", 10)


async def test_transcript_is_bounded_and_pages_backwards(store: Store) -> None:
    record, epoch = await _hosted(store, transcript_maxlen=6)
    for i in range(5):
        await _submit(store, record.worker_id, f"q{i}")
        await _run_once(store, record.worker_id, epoch, f"a{i}")
    page = await store.read_transcript(record.worker_id, 4, None)
    assert [e.text for e in page.entries] == ["q3", "a3", "q4", "a4"]
    assert page.next_before is not None
    older = await store.read_transcript(record.worker_id, 4, page.next_before)
    assert [e.text for e in older.entries] == ["q2", "a2"]
    assert older.next_before is None
    assert (
        page.entries[1].role is TranscriptRole.ASSISTANT
        and page.entries[1].result is RunResult.FINISHED
    )


async def test_cancelled_empty_run_leaves_a_notice(store: Store) -> None:
    record, epoch = await _hosted(store)
    await _submit(store, record.worker_id)
    taken = await _take(store, record.worker_id, epoch)
    await _finish(store, record.worker_id, epoch, taken, RunOutcome(RunResult.CANCELLED, ""))
    last = (await store.read_transcript(record.worker_id, 1, None)).entries[-1]
    assert last.role is TranscriptRole.NOTICE and last.result is RunResult.CANCELLED


W = ScopeMode.WRITE
R = ScopeMode.READ


async def test_scope_conflict_and_reclaim(store: Store) -> None:
    a = await _worker(store)
    await store.claim_scope(a.worker_id, [ScopeEntry(path="/repo/src", mode=W)], None)
    with pytest.raises(ScopeConflict):
        await store.claim_scope(new_id(), [ScopeEntry(path="/repo", mode=W)], None)
    await store.claim_scope(new_id(), [ScopeEntry(path="/repo", mode=R)], None)  # reads share
    await store.claim_scope(new_id(), [ScopeEntry(path="/repo/srcx", mode=W)], None)
    await store.request_stop(a.worker_id)  # a stopped worker's claim is stale
    await store.claim_scope(new_id(), [ScopeEntry(path="/repo/src/lib", mode=W)], None)


async def test_delegation_subset(store: Store) -> None:
    parent = await _worker(store)
    await store.claim_scope(parent.worker_id, [ScopeEntry(path="/repo", mode=W)], None)
    child = new_id()
    await store.claim_scope(child, [ScopeEntry(path="/repo/docs", mode=W)], parent.worker_id)
    with pytest.raises(ScopeConflict):
        await store.claim_scope(new_id(), [ScopeEntry(path="/etc", mode=R)], parent.worker_id)
    with pytest.raises(WorkerNotFound):
        await store.claim_scope(new_id(), [], new_id())
    await store.release_scope(parent.worker_id)
    await store.release_scope(child)
    await store.claim_scope(new_id(), [ScopeEntry(path="/repo", mode=W)], None)


# -- the host's hot path: take_run and finish_run --------------------------------------------------


async def test_take_run_starts_the_oldest_input_with_its_history(store: Store) -> None:
    record, epoch = await _hosted(store)
    await _submit(store, record.worker_id, "first")
    await _run_once(store, record.worker_id, epoch, "answer one")
    sub = await _submit(store, record.worker_id, 'second "quoted" ünïcode \\ text')
    run_id = new_id()
    taken = await store.take_run(record.worker_id, MEMBER, epoch, run_id, now_s(), 10)
    assert taken is not None
    assert (taken.item.seq, taken.item.input_id) == (sub.seq, sub.input_id)
    assert taken.item.text == 'second "quoted" ünïcode \\ text'
    assert (taken.claim.run_id, taken.claim.attempt, taken.claim.cancelled) == (run_id, 1, False)
    assert taken.history == [
        ("user", "first"),
        ("assistant", "answer one"),
        ("user", 'second "quoted" ünïcode \\ text'),
    ]
    events = await store.read_events(record.worker_id, sub.cursor, 100)
    started = [e for e in events if e.type == "run_started"]
    assert len(started) == 1 and started[0].cursor == taken.claim.cursor
    assert (started[0].run_id, started[0].input_id) == (run_id, sub.input_id)
    got = await store.get_worker(record.worker_id)
    assert got.state is WorkerState.RUNNING and got.run_id == run_id
    user = (await store.read_transcript(record.worker_id, 1, None)).entries[0]
    assert (user.role, user.text, user.input_id, user.run_id) == (
        TranscriptRole.USER,
        taken.item.text,
        sub.input_id,
        run_id,
    )
    assert user.ts == taken.item.ts


async def test_take_run_skips_finished_redeliveries_and_sees_cancels(store: Store) -> None:
    record, epoch = await _hosted(store)
    assert await store.take_run(record.worker_id, MEMBER, epoch, new_id(), now_s(), 5) is None
    first = await _submit(store, record.worker_id)
    await store.cancel(record.worker_id)
    taken = await store.take_run(record.worker_id, MEMBER, epoch, new_id(), now_s(), 0)
    assert taken is not None and taken.item.seq == first.seq
    assert taken.claim.cancelled and taken.history == []
    await _finish(store, record.worker_id, epoch, taken, RunOutcome(RunResult.CANCELLED, ""))
    assert await store.take_run(record.worker_id, MEMBER, epoch, new_id(), now_s(), 5) is None


async def test_take_run_again_by_the_next_host_is_attempt_two(store: Store) -> None:
    record, epoch = await _hosted(store)
    await _submit(store, record.worker_id)
    first = await store.take_run(record.worker_id, MEMBER, epoch, new_id(), now_s(), 5)
    await store.release_many({record.worker_id: epoch}, MEMBER)
    epoch2 = await store.acquire(record.worker_id, "m2", 60_000)
    assert epoch2 is not None and first is not None
    with pytest.raises(LeaseLost):
        await store.take_run(record.worker_id, MEMBER, epoch, new_id(), now_s(), 5)
    again = await store.take_run(record.worker_id, "m2", epoch2, new_id(), now_s(), 5)
    assert again is not None and again.item.input_id == first.item.input_id
    assert (first.claim.attempt, again.claim.attempt) == (1, 2)
    assert [role for role, _ in again.history] == ["user"]  # written once


async def test_finish_run_writes_pending_deltas_first_and_tells_what_is_left(
    store: Store,
) -> None:
    record, epoch = await _hosted(store)
    sub = await _submit(store, record.worker_id, "one")
    await _submit(store, record.worker_id, "two")
    taken = await store.take_run(record.worker_id, MEMBER, epoch, new_id(), now_s(), 5)
    assert taken is not None
    tail = TextDelta(
        worker_id=record.worker_id,
        ts=now_s(),
        run_id=taken.claim.run_id,
        input_id=taken.item.input_id,
        text="the tail",
    )
    outcome = RunOutcome(RunResult.FINISHED, "the tail", 2, 1, deltas=(tail,))
    more = await store.finish_run(
        record.worker_id, epoch, taken.item, outcome, now_s(), run_id=taken.claim.run_id
    )
    assert more  # "two" waits
    events = [e for e in await store.read_events(record.worker_id, sub.cursor, 100)]
    kinds = [e.type for e in events if e.type not in ("state_changed", "user_message")]
    assert kinds == ["run_started", "text_delta", "text_done", "usage", "run_finished"]
    finished = next(e for e in events if e.type == "run_finished")
    assert finished.run_id == taken.claim.run_id and finished.input_id == sub.input_id
    last = await store.take_run(record.worker_id, MEMBER, epoch, new_id(), now_s(), 5)
    assert last is not None and last.item.text == "two"
    done = RunOutcome(RunResult.FINISHED, "")
    more = await store.finish_run(
        record.worker_id, epoch, last.item, done, now_s(), run_id=last.claim.run_id
    )
    assert not more  # found by the model test: the memory store said True here
    got = await store.get_worker(record.worker_id)
    assert got.state is WorkerState.IDLE and got.queue_depth == 0
    assert await store.take_run(record.worker_id, MEMBER, epoch, new_id(), now_s(), 5) is None


async def test_submit_without_a_strategy_takes_the_profiles_default(store: Store) -> None:
    record, _ = await _hosted(store)  # profile "assistant"

    async def submit(worker_id: str, defaults: dict[str, Strategy]) -> None:
        await store.submit_input(
            worker_id, "hi", new_id(), None, now_s(), default_strategies=defaults
        )

    await submit(record.worker_id, {"assistant": Strategy.REJECT, "other": Strategy.ENQUEUE})
    with pytest.raises(WorkerBusy):
        await submit(record.worker_id, {"assistant": Strategy.REJECT})
    await submit(record.worker_id, {"assistant": Strategy.ENQUEUE})
    assert (await store.get_worker(record.worker_id)).queue_depth == 2
    with pytest.raises(InvalidInput):
        await submit(record.worker_id, {"other": Strategy.ENQUEUE})
    with pytest.raises(WorkerNotFound):
        await submit(new_id(), {"assistant": Strategy.ENQUEUE})


# -- bounds and edges every store keeps alike (issues 10 and 13) ---------------------------------


async def test_input_id_with_another_text_is_refused_and_changes_nothing(store: Store) -> None:
    record, _ = await _hosted(store)
    first = await _submit(store, record.worker_id, "the text", input_id="key-1")
    before = await store.last_cursor(record.worker_id)
    with pytest.raises(InputIdConflict):
        await _submit(store, record.worker_id, "another text", input_id="key-1")
    assert await store.last_cursor(record.worker_id) == before
    again = await _submit(store, record.worker_id, "the text", input_id="key-1")
    assert (again.seq, again.cursor, again.duplicate) == (first.seq, first.cursor, True)
    assert (await store.get_worker(record.worker_id)).next_seq == 1


async def test_input_ids_are_remembered_for_two_generations(store: Store) -> None:
    record, _ = await _hosted(store)
    await _submit(store, record.worker_id, input_id="oldest")
    for i in range(2 * DEDUPE_WINDOW):
        await _submit(store, record.worker_id, input_id=f"k{i}")
    recent = await _submit(store, record.worker_id, input_id=f"k{DEDUPE_WINDOW}")
    assert recent.duplicate  # within the last window: the same answer
    forgotten = await _submit(store, record.worker_id, input_id="oldest")
    assert not forgotten.duplicate  # two generations later: a new input
    assert forgotten.seq == 2 * DEDUPE_WINDOW + 2


async def test_a_stopped_worker_is_forgotten_after_its_retention(make_store: StoreFactory) -> None:
    store = make_store(Settings(events_maxlen=1000, retention_s=1))
    record = await _worker(store)
    live = await _worker(store)
    assert (await store.request_stop(record.worker_id)).state is WorkerState.STOPPED

    async def gone() -> bool:
        try:
            await store.get_worker(record.worker_id)
        except WorkerNotFound:
            return True
        return False

    await wait_until(gone, timeout_s=10, what="the stopped worker's retention to run out")
    listed = {r.worker_id for r in await store.list_workers()}
    assert record.worker_id not in listed and live.worker_id in listed
    with pytest.raises(WorkerNotFound):
        await store.read_events(record.worker_id, None, 10)


async def test_a_cursor_ahead_of_the_end_is_invalid(store: Store) -> None:
    record, _ = await _hosted(store)
    last = await store.last_cursor(record.worker_id)
    ms, _, seq = last.partition("-")
    ahead = f"{ms}-{int(seq or 0) + 1}"
    for read in (
        store.read_events(record.worker_id, ahead, 10),
        store.tail_events(record.worker_id, ahead, 10, 0),
        store.read_events(record.worker_id, f"{int(ms) + 10**6}", 10),
    ):
        with pytest.raises(InvalidInput):
            await read
    assert await store.read_events(record.worker_id, last, 10) == []


async def test_a_cursor_half_beyond_u64_is_read_as_the_largest(store: Store) -> None:
    """Every cursor OpenAPI allows (20 digits a half) is a position, never a malformed one."""
    record, epoch = await _hosted(store)
    await _submit(store, record.worker_id)
    await _run_once(store, record.worker_id, epoch)
    huge = "9" * 20  # above 2**64 - 1: no stream id holds it
    events = await store.read_events(record.worker_id, None, 100)
    assert await store.read_events(record.worker_id, f"0-{huge}", 100) == events
    with pytest.raises(InvalidInput):  # past every id a log can reach: ahead of the end
        await store.read_events(record.worker_id, huge, 10)
    whole = await store.read_transcript(record.worker_id, 10, None)
    assert await store.read_transcript(record.worker_id, 10, f"{huge}-{huge}") == whole
    with pytest.raises(InvalidInput):
        await store.read_events(record.worker_id, "1-2\n", 10)


async def test_transcript_before_the_first_id_is_an_empty_page(store: Store) -> None:
    record, epoch = await _hosted(store)
    await _submit(store, record.worker_id)
    await _run_once(store, record.worker_id, epoch)
    for before in ("0", "0-0"):
        page = await store.read_transcript(record.worker_id, 10, before)
        assert page.entries == [] and page.next_before is None


async def test_the_host_is_woken_by_new_input_cancel_and_stop(store: Store) -> None:
    record, _ = await _hosted(store)
    wakes = store.wake_ups(MEMBER)
    async with contextlib.aclosing(wakes):
        listening = asyncio.ensure_future(anext(wakes))
        await _submit(store, record.worker_id)
        first = await asyncio.wait_for(listening, 5)
        assert first.worker_id == record.worker_id  # a new input: start draining
        await store.cancel(record.worker_id)
        assert await asyncio.wait_for(anext(wakes), 5) == WakeUp(record.worker_id, cancels=True)
        await store.request_stop(record.worker_id)
        assert await asyncio.wait_for(anext(wakes), 5) == WakeUp(record.worker_id, cancels=True)


async def test_an_unhosted_worker_wakes_nobody(store: Store) -> None:
    record = await _worker(store)  # pending: no host yet
    hosted, _ = await _hosted(store)
    wakes = store.wake_ups(MEMBER)
    async with contextlib.aclosing(wakes):
        listening = asyncio.ensure_future(anext(wakes))
        await _submit(store, record.worker_id)
        await _submit(store, hosted.worker_id)
        assert (await asyncio.wait_for(listening, 5)).worker_id == hosted.worker_id


async def test_create_workers_makes_each_as_create_does_in_order(store: Store) -> None:
    records = [
        WorkerRecord(
            worker_id=new_id(), display_name=f"b{n}", profile="assistant", created_at=now_s()
        )
        for n in range(5)
    ]
    created = await store.create_workers(records)
    assert [c.record.worker_id for c in created] == [r.worker_id for r in records]
    listed = {r.worker_id for r in await store.list_workers()}
    for record, made in zip(records, created, strict=True):
        assert made.record.state is WorkerState.PENDING
        assert made.cursor == await store.last_cursor(record.worker_id)
        got = await store.get_worker(record.worker_id)
        assert (got.display_name, got.state) == (record.display_name, WorkerState.PENDING)
        assert record.worker_id in listed
        events = await store.read_events(record.worker_id, None, 10)
        assert [e.type for e in events] == ["state_changed"]
    assert await store.create_workers([]) == []
