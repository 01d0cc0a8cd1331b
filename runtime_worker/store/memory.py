"""`MemoryStore`: the embedded runtime's store, and the reference for the Store contract.

Everything lives in this process; each method runs without awaiting in the middle, so each is
atomic on the event loop exactly as a Lua script is atomic on Redis. Cursors have the shape of
Redis stream ids (`<ms>-<n>`) so clients cannot tell the two stores apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncGenerator, Mapping, Sequence

from runtime_worker.store import outcome as runs
from runtime_worker.store._memory_conversations import MemoryConversations
from runtime_worker.store._memory_records import Known, Log, MemoryWorker, ScopeClaims, WakeQueues
from runtime_worker.store._memory_runs import MemoryRuns
from runtime_worker.store._memory_webhooks import MemoryWebhooks
from runtime_worker.store.base import (
    CancelOutcome,
    Listed,
    QueuedInput,
    RecordAt,
    RunClaim,
    RunOutcome,
    Store,
    Submission,
    TakenRun,
    WakeUp,
    WorkerRecord,
)
from runtime_worker.store.bounds import text_digest
from runtime_worker.store.cursor import CursorClock, format_cursor, parse_cursor
from runtime_worker.store.schedules import MemorySchedules
from shared.errors import (
    InputIdConflict,
    InvalidInput,
    LeaseLost,
    RateLimited,
    WorkerBusy,
    WorkerNotFound,
    WorkerStopped,
)
from shared.events import Event, RunStarted, StateChanged, UserMessage, parse_event
from shared.models import (
    ENDED_STATES,
    LIVE_STATES,
    ScopeEntry,
    Strategy,
    TranscriptEntry,
    TranscriptPage,
    WorkerState,
)
from shared.settings import Settings
from shared.timeutil import monotonic_s, now_s


class MemoryStore(MemoryConversations, MemoryRuns, MemorySchedules, MemoryWebhooks, Store):
    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings or Settings()
        self._workers: dict[str, MemoryWorker] = {}
        self._claims = ScopeClaims()
        self._wakes = WakeQueues()
        self._clock = CursorClock()
        self._schedules, self._schedule_marks = {}, {}  # typed in `MemorySchedules`

    # -- helpers ---------------------------------------------------------------------------------

    def _get(self, worker_id: str) -> MemoryWorker:
        worker = self._find(worker_id)
        if worker is None:
            raise WorkerNotFound(f"no worker {worker_id}")
        return worker

    def _find(self, worker_id: str) -> MemoryWorker | None:
        """The Worker, unless there is none or its retention after stopping ran out (then it
        is forgotten here, the way Redis expires a stopped Worker's keys)."""
        worker = self._workers.get(worker_id)
        retire_at = worker.retire_at if worker is not None else None
        if retire_at is not None and monotonic_s() >= retire_at:
            del self._workers[worker_id]
            return None
        return worker

    def _fenced(self, worker_id: str, epoch: int) -> MemoryWorker:
        worker = self._get(worker_id)
        if worker.record.epoch != epoch:
            raise LeaseLost(f"worker {worker_id} is at epoch {worker.record.epoch}, not {epoch}")
        return worker

    def _emit(self, worker: MemoryWorker, event: Event) -> str:
        cursor = format_cursor(self._clock.next())
        event = event.model_copy(update={"cursor": cursor})
        worker.events.append(parse_cursor(cursor), event.model_dump_json(exclude_none=True))
        return cursor

    def _note(self, worker: MemoryWorker, entry: TranscriptEntry) -> None:
        cursor = self._clock.next()
        worker.transcript.append(
            cursor, entry.model_copy(update={"cursor": format_cursor(cursor)}).model_dump_json()
        )

    def _set_state(self, worker: MemoryWorker, state: WorkerState) -> None:
        if worker.record.state is not state:
            worker.record.state = state
            self._emit(
                worker, StateChanged(worker_id=worker.record.worker_id, ts=now_s(), state=state)
            )
            if state is WorkerState.STOPPED:  # the retention clock starts
                worker.retire_at = monotonic_s() + self._settings.retention_s

    def _notify(self, worker: MemoryWorker) -> None:
        """Wake every reader waiting on this worker; each waits on the event it saw last."""
        worker.changed.set()
        worker.changed = asyncio.Event()

    # -- workers ---------------------------------------------------------------------------------

    async def create(self, record: WorkerRecord) -> RecordAt:
        record = dataclasses.replace(record, state=WorkerState.PENDING)
        worker = MemoryWorker(
            record=record,
            events=Log(self._settings.events_maxlen),
            transcript=Log(record.transcript_maxlen),
        )
        self._workers[record.worker_id] = worker
        cursor = self._emit(
            worker, StateChanged(worker_id=record.worker_id, ts=now_s(), state=record.state)
        )
        return RecordAt(dataclasses.replace(record), cursor)

    async def get_worker(self, worker_id: str) -> WorkerRecord:
        return dataclasses.replace(self._get(worker_id).record)

    async def get_worker_at(self, worker_id: str) -> RecordAt:
        worker = self._get(worker_id)
        return RecordAt(dataclasses.replace(worker.record), format_cursor(worker.events.last))

    async def listing(self) -> list[Listed]:
        return [
            Listed(r.worker_id, r.display_name, r.profile, r.state, r.created_at)
            for r in await self.list_workers()
        ]

    async def list_workers(self) -> list[WorkerRecord]:
        found = (self._find(worker_id) for worker_id in list(self._workers))
        return [dataclasses.replace(w.record) for w in found if w is not None]

    async def request_stop(self, worker_id: str) -> WorkerRecord:
        worker = self._get(worker_id)
        record = worker.record
        if record.state not in LIVE_STATES:
            return dataclasses.replace(record)
        record.cancel_upto = record.next_seq
        self._set_state(worker, WorkerState.STOPPING if record.queue_depth else WorkerState.STOPPED)
        self._notify(worker)
        self._wake(record, cancels=True)
        return dataclasses.replace(record)

    # -- scope -----------------------------------------------------------------------------------

    async def claim_scope(
        self, worker_id: str, scope: Sequence[ScopeEntry], delegated_from: str | None
    ) -> None:
        if delegated_from is not None:
            parent = self._get(delegated_from)
            if parent.record.state not in LIVE_STATES:
                raise WorkerStopped(f"parent worker {delegated_from} is not live")
        self._claims.claim(worker_id, scope, delegated_from, live=self._is_live)

    def _is_live(self, worker_id: str) -> bool:
        found = self._find(worker_id)
        return found is not None and found.record.state in LIVE_STATES

    async def release_scope(self, worker_id: str) -> None:
        self._claims.release(worker_id)

    # -- input path ------------------------------------------------------------------------------

    async def submit_input(
        self,
        worker_id: str,
        text: str,
        input_id: str,
        strategy: Strategy | None,
        ts: float,
        *,
        default_strategies: Mapping[str, Strategy] | None = None,
        max_queued: int | None = None,
        trace: Mapping[str, str] | None = None,
    ) -> Submission:
        worker = self._get(worker_id)
        record = worker.record
        ts = round(ts, 3)  # whole milliseconds, as every store keeps it
        if strategy is None:
            strategy = (default_strategies or {}).get(record.profile)
            if strategy is None:
                raise InvalidInput(f"unknown profile {record.profile!r}")
        if record.state not in LIVE_STATES:
            raise WorkerStopped(f"worker {worker_id} is {record.state.value}")
        digest = text_digest(text)
        known = worker.input_ids.get(input_id)
        if known is not None:
            if known.digest != digest:
                raise InputIdConflict(f"input {input_id} was sent before with another text")
            return Submission(input_id, known.cursor, known.seq, duplicate=True, host=record.host)
        if strategy is Strategy.REJECT and record.queue_depth > 0:
            raise WorkerBusy(f"worker {worker_id} is busy")
        if max_queued is not None and record.queue_depth >= max_queued:
            raise RateLimited(f"worker {worker_id} has {max_queued} inputs queued")
        if strategy is Strategy.INTERRUPT:
            record.cancel_upto = record.next_seq
        record.next_seq += 1
        cursor = format_cursor(worker.events.ids[-1]) if worker.events.ids else "0"
        item = QueuedInput(
            entry_id=format_cursor(self._clock.next()),
            seq=record.next_seq,
            input_id=input_id,
            text=text,
            ts=ts,
            trace=dict(trace or {}),
        )
        worker.inputs.append(item)
        self._emit(worker, UserMessage(worker_id=worker_id, ts=ts, input_id=input_id, text=text))
        worker.input_ids.add(input_id, Known(record.next_seq, cursor, digest))
        self._notify(worker)
        self._wake(record, cancels=strategy is Strategy.INTERRUPT)
        return Submission(input_id, cursor, record.next_seq, duplicate=False, host=record.host)

    async def cancel(self, worker_id: str) -> CancelOutcome:
        worker = self._get(worker_id)
        record = worker.record
        if record.queue_depth == 0 or record.cancel_upto > record.done_seq:
            # Nothing unfinished, or the head is already cancelled: cancelling again is a no-op.
            return CancelOutcome(record.state, cancelled=record.queue_depth > 0, host=record.host)
        record.cancel_upto = record.done_seq + 1
        self._wake(record, cancels=True)
        return CancelOutcome(record.state, cancelled=True, host=record.host)

    # -- wake-ups: in process, handed to the host directly -------------------------------------

    def _wake(self, record: WorkerRecord, *, cancels: bool) -> None:
        if record.host is not None:  # no host yet: the one that acquires it drains what waits
            self._wakes.put(record.host, WakeUp(record.worker_id, cancels))

    async def wake_ups(self, member_id: str) -> AsyncGenerator[WakeUp, None]:
        async for wake in self._wakes.listen(member_id):
            yield wake

    # -- leases and host writes ------------------------------------------------------------------

    async def acquire(self, worker_id: str, member_id: str, ttl_ms: int) -> int | None:
        worker = self._get(worker_id)
        now = monotonic_s()
        if worker.lease_held(now) or worker.record.state in ENDED_STATES:
            return None
        worker.hold_lease(member_id, ttl_ms, now)
        worker.record.epoch += 1
        worker.record.host = member_id
        if worker.record.state is WorkerState.PENDING:
            self._set_state(worker, WorkerState.IDLE)
        return worker.record.epoch

    async def renew(self, member_id: str, leases: dict[str, int], ttl_ms: int) -> dict[str, bool]:
        result: dict[str, bool] = {}
        now = monotonic_s()
        for worker_id, epoch in leases.items():
            worker = self._find(worker_id)
            result[worker_id] = worker is not None and worker.holds(member_id, epoch, now)
            if worker is not None and result[worker_id]:
                worker.hold_lease(member_id, ttl_ms, now)
        return result

    async def release_many(
        self, leases: Mapping[str, int], member_id: str, *, idle_only: bool = False
    ) -> set[str]:
        found = [(w, self._find(w), epoch) for w, epoch in leases.items()]
        return {w for w, k, e in found if k and k.release(member_id, e, idle_only=idle_only)}

    async def take_run(
        self, worker_id: str, member_id: str, epoch: int, run_id: str, ts: float, history: int,
        *, solo: bool = False,
    ) -> TakenRun | None:  # fmt: skip
        worker = self._fenced(worker_id, epoch)
        if not worker.holds(member_id, epoch, monotonic_s()):
            raise LeaseLost(f"worker {worker_id}: {member_id} does not hold the lease")
        while worker.inputs:
            item = worker.inputs[0]
            if item.seq > worker.record.done_seq:
                claim = self._begin(worker, item, run_id, ts)
                entries = worker.transcript.before(None, history) if history > 0 else []
                lines = [TranscriptEntry.model_validate_json(raw) for _, raw in entries]
                return TakenRun(item, claim, [(e.role.value, e.text) for e in lines])
            self._ack(worker, item)  # a redelivery of a finished run
        return None

    def _begin(self, worker: MemoryWorker, item: QueuedInput, run_id: str, ts: float) -> RunClaim:
        record = worker.record
        worker_id = record.worker_id
        first = record.run_seq != item.seq
        record.run_attempt = 1 if first else record.run_attempt + 1
        record.run_seq, record.run_id = item.seq, run_id
        record.run_input_id, record.run_started_at = item.input_id, ts
        if first:
            self._note(worker, runs.user_entry(item, run_id))
        if record.state is WorkerState.IDLE:
            self._set_state(worker, WorkerState.RUNNING)
        record.run_cursor = self._emit(
            worker,
            RunStarted(
                worker_id=worker_id,
                ts=ts,
                run_id=run_id,
                input_id=item.input_id,
                attempt=record.run_attempt,
            ),
        )
        self._notify(worker)
        host_lost, worker.host_lost = worker.host_lost and not first, False
        return RunClaim(
            run_id,
            record.run_attempt,
            item.seq <= record.cancel_upto,
            record.run_cursor,
            host_lost=host_lost,
        )

    async def append_events(self, worker_id: str, epoch: int, events: Sequence[Event]) -> str:
        worker = self._fenced(worker_id, epoch)
        cursor = ""
        for event in events:
            cursor = self._emit(worker, event)
        self._notify(worker)
        return cursor

    async def finish_run(
        self,
        worker_id: str,
        epoch: int,
        item: QueuedInput,
        outcome: RunOutcome,
        ts: float,
        *,
        run_id: str,
    ) -> bool:
        worker = self._fenced(worker_id, epoch)
        record = worker.record
        for event in runs.final_events(worker_id, run_id, item, outcome, ts):
            self._emit(worker, event)
        self._note(worker, runs.final_entry(record, run_id, item, outcome, ts))
        runs.count_run(record.usage, outcome)
        record.done_seq = item.seq
        record.run_id = record.run_input_id = record.run_cursor = record.run_started_at = None
        self._ack(worker, item)
        self._set_state(worker, runs.final_state(record))
        self._notify(worker)
        return record.queue_depth > 0 or bool(worker.inputs)

    def _ack(self, worker: MemoryWorker, item: QueuedInput) -> None:
        if worker.inputs and worker.inputs[0].entry_id == item.entry_id:
            worker.inputs.popleft()

    async def is_cancelled(self, worker_id: str, seq: int) -> bool:
        return seq <= self._get(worker_id).record.cancel_upto

    async def pending_work(self, worker_ids: Sequence[str]) -> set[str]:
        found = set()
        for worker_id in worker_ids:
            worker = self._find(worker_id)
            if worker is None or worker.record.queue_depth > 0:
                found.add(worker_id)
        return found

    # -- readers ---------------------------------------------------------------------------------

    async def read_events(self, worker_id: str, after: str | None, limit: int) -> list[Event]:
        worker = self._get(worker_id)
        cursor = worker.events.check(after)
        return [parse_event(raw) for _, raw in worker.events.after(cursor, limit)]

    async def tail_events(
        self, worker_id: str, after: str, limit: int, timeout_ms: int
    ) -> list[Event]:
        worker = self._get(worker_id)
        cursor = worker.events.check(after)
        deadline = monotonic_s() + timeout_ms / 1000
        while True:
            changed = worker.changed
            found = worker.events.after(cursor, limit)
            remaining = deadline - monotonic_s()
            if found or remaining <= 0:
                return [parse_event(raw) for _, raw in found]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await changed.wait()

    async def last_cursor(self, worker_id: str) -> str:
        worker = self._get(worker_id)
        return format_cursor(worker.events.ids[-1]) if worker.events.ids else "0"

    async def read_transcript(
        self, worker_id: str, limit: int, before: str | None
    ) -> TranscriptPage:
        worker = self._get(worker_id)
        bound = None if before is None else parse_cursor(before)
        page = worker.transcript.before(bound, limit)
        entries = [TranscriptEntry.model_validate_json(raw) for _, raw in page]
        more = bool(page) and worker.transcript.ids[0] < page[0][0]
        return TranscriptPage(entries=entries, next_before=entries[0].cursor if more else None)
