"""`MemoryStore`: the embedded runtime's store, and the reference for the Store contract.

Everything lives in this process; each method runs without awaiting in the middle, so each is
atomic on the event loop exactly as a Lua script is atomic on Redis. Cursors have the shape of
Redis stream ids (`<ms>-<n>`) so clients cannot tell the two stores apart.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
from collections import deque
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field

from runtime_worker import scope as scopes
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
from runtime_worker.store.bounds import DEDUPE_WINDOW, text_digest
from runtime_worker.store.cursor import (
    Cursor,
    CursorClock,
    check_window,
    format_cursor,
    parse_cursor,
)
from runtime_worker.store.outcome import final_events, final_state, transcript_for
from shared.errors import (
    InputIdConflict,
    InvalidInput,
    LeaseLost,
    ScopeConflict,
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
    TranscriptRole,
    WorkerState,
)
from shared.settings import Settings
from shared.timeutil import monotonic_s, now_s


@dataclass
class _Log:
    """An append-only, trimmed log with stream-id cursors."""

    maxlen: int
    ids: list[Cursor] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    trimmed: bool = False

    def append(self, cursor: Cursor, item: str) -> None:
        self.ids.append(cursor)
        self.items.append(item)
        excess = len(self.ids) - self.maxlen
        if excess > 0:
            self.trimmed = True
            del self.ids[:excess]
            del self.items[:excess]

    @property
    def last(self) -> Cursor:
        return self.ids[-1] if self.ids else (0, 0)

    def check(self, after: str | None) -> Cursor:
        """`after` parsed and judged against the window (see `cursor.check_window`)."""
        if after is None:
            return (0, 0)
        cursor = parse_cursor(after)
        check_window(cursor, self.ids[0] if self.ids else None, self.last, self.trimmed)
        return cursor

    def after(self, cursor: Cursor, limit: int) -> list[tuple[Cursor, str]]:
        start = bisect.bisect_right(self.ids, cursor)
        return list(
            zip(self.ids[start : start + limit], self.items[start : start + limit], strict=True)
        )

    def before(self, cursor: Cursor | None, limit: int) -> list[tuple[Cursor, str]]:
        end = len(self.ids) if cursor is None else bisect.bisect_left(self.ids, cursor)
        start = max(0, end - limit)
        return list(zip(self.ids[start:end], self.items[start:end], strict=True))


@dataclass(frozen=True, slots=True)
class _Known:
    """What the dedupe memory keeps of an accepted input."""

    seq: int
    cursor: str
    digest: str


@dataclass
class _InputIds:
    """Two generations of `DEDUPE_WINDOW` input ids, as the Redis store keeps them."""

    current: dict[str, _Known] = field(default_factory=dict)
    old: dict[str, _Known] = field(default_factory=dict)

    def get(self, input_id: str) -> _Known | None:
        return self.current.get(input_id) or self.old.get(input_id)

    def add(self, input_id: str, known: _Known) -> None:
        if len(self.current) >= DEDUPE_WINDOW:
            self.old, self.current = self.current, {}
        self.current[input_id] = known


@dataclass
class _Worker:
    record: WorkerRecord
    events: _Log
    transcript: _Log
    inputs: deque[QueuedInput] = field(default_factory=deque)
    input_ids: _InputIds = field(default_factory=_InputIds)
    lease_member: str | None = None
    lease_deadline: float = 0.0
    retire_at: float | None = None  # monotonic time this stopped Worker is forgotten
    changed: asyncio.Event = field(default_factory=asyncio.Event)


WAKE_QUEUE_MAX = 10_000
"""Wake-ups kept for a member that is not listening; beyond that they are dropped (a host's
sweep finds the work anyway)."""


class MemoryStore(Store):
    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings or Settings()
        self._workers: dict[str, _Worker] = {}
        self._claims: dict[str, tuple[str, list[ScopeEntry]]] = {}  # worker -> (group, scope)
        self._wakes: dict[str, asyncio.Queue[WakeUp]] = {}
        self._clock = CursorClock()

    # -- helpers ---------------------------------------------------------------------------------

    def _get(self, worker_id: str) -> _Worker:
        worker = self._find(worker_id)
        if worker is None:
            raise WorkerNotFound(f"no worker {worker_id}")
        return worker

    def _find(self, worker_id: str) -> _Worker | None:
        """The Worker, unless there is none or its retention after stopping ran out (then it
        is forgotten here, the way Redis expires a stopped Worker's keys)."""
        worker = self._workers.get(worker_id)
        retire_at = worker.retire_at if worker is not None else None
        if retire_at is not None and monotonic_s() >= retire_at:
            del self._workers[worker_id]
            return None
        return worker

    def _fenced(self, worker_id: str, epoch: int) -> _Worker:
        worker = self._get(worker_id)
        if worker.record.epoch != epoch:
            raise LeaseLost(f"worker {worker_id} is at epoch {worker.record.epoch}, not {epoch}")
        return worker

    def _emit(self, worker: _Worker, event: Event) -> str:
        cursor = format_cursor(self._clock.next())
        event = event.model_copy(update={"cursor": cursor})
        worker.events.append(parse_cursor(cursor), event.model_dump_json(exclude_none=True))
        return cursor

    def _note(self, worker: _Worker, entry: TranscriptEntry) -> None:
        cursor = self._clock.next()
        worker.transcript.append(
            cursor, entry.model_copy(update={"cursor": format_cursor(cursor)}).model_dump_json()
        )

    def _set_state(self, worker: _Worker, state: WorkerState) -> None:
        if worker.record.state is not state:
            worker.record.state = state
            self._emit(
                worker, StateChanged(worker_id=worker.record.worker_id, ts=now_s(), state=state)
            )
            if state is WorkerState.STOPPED:  # the retention clock starts
                worker.retire_at = monotonic_s() + self._settings.retention_s

    def _notify(self, worker: _Worker) -> None:
        """Wake every reader waiting on this worker; each waits on the event it saw last."""
        worker.changed.set()
        worker.changed = asyncio.Event()

    # -- workers ---------------------------------------------------------------------------------

    async def create(self, record: WorkerRecord) -> RecordAt:
        record = dataclasses.replace(record, state=WorkerState.PENDING)
        worker = _Worker(
            record=record,
            events=_Log(self._settings.events_maxlen),
            transcript=_Log(record.transcript_maxlen),
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
        group = worker_id
        if delegated_from is not None:
            parent = self._get(delegated_from)
            if parent.record.state not in LIVE_STATES:
                raise WorkerStopped(f"parent worker {delegated_from} is not live")
            group, parent_scope = self._claims.get(delegated_from, (delegated_from, []))
            if not scopes.covers(parent_scope, scope):
                raise ScopeConflict(
                    "a delegated worker may only hold a subset of its parent's scope"
                )
        for other, (other_group, other_scope) in list(self._claims.items()):
            if other_group == group or not scopes.conflicts(scope, other_scope):
                continue
            holder = self._find(other)
            if holder is None or holder.record.state not in LIVE_STATES:
                del self._claims[other]  # a stale claim of an ended worker: reclaim it
                continue
            raise ScopeConflict("the requested write scope overlaps a live worker's scope")
        self._claims[worker_id] = (group, list(scope))

    async def release_scope(self, worker_id: str) -> None:
        self._claims.pop(worker_id, None)

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
        )
        worker.inputs.append(item)
        self._emit(worker, UserMessage(worker_id=worker_id, ts=ts, input_id=input_id, text=text))
        worker.input_ids.add(input_id, _Known(record.next_seq, cursor, digest))
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

    def _queue(self, member_id: str) -> asyncio.Queue[WakeUp]:
        return self._wakes.setdefault(member_id, asyncio.Queue(maxsize=WAKE_QUEUE_MAX))

    def _wake(self, record: WorkerRecord, *, cancels: bool) -> None:
        if record.host is None:
            return  # no host yet: the one that acquires it drains what waits
        queue = self._queue(record.host)
        if not queue.full():
            queue.put_nowait(WakeUp(record.worker_id, cancels))

    async def wake_ups(self, member_id: str) -> AsyncGenerator[WakeUp, None]:
        queue = self._queue(member_id)
        while True:
            yield await queue.get()

    # -- leases and host writes ------------------------------------------------------------------

    async def acquire(self, worker_id: str, member_id: str, ttl_ms: int) -> int | None:
        worker = self._get(worker_id)
        now = monotonic_s()
        held = worker.lease_member is not None and (
            worker.lease_deadline == 0.0 or worker.lease_deadline > now
        )
        if held or worker.record.state in ENDED_STATES:
            return None
        worker.lease_member = member_id
        worker.lease_deadline = 0.0 if ttl_ms <= 0 else now + ttl_ms / 1000
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
            ok = (
                worker is not None
                and worker.lease_member == member_id
                and worker.record.epoch == epoch
                and (worker.lease_deadline == 0.0 or worker.lease_deadline > now)
            )
            if ok and worker is not None:
                worker.lease_deadline = 0.0 if ttl_ms <= 0 else now + ttl_ms / 1000
            result[worker_id] = ok
        return result

    async def release_many(self, leases: Mapping[str, int], member_id: str) -> None:
        for worker_id, epoch in leases.items():
            worker = self._find(worker_id)
            if worker and worker.lease_member == member_id and worker.record.epoch == epoch:
                worker.lease_member = None
                worker.record.host = None

    async def take_run(
        self, worker_id: str, member_id: str, epoch: int, run_id: str, ts: float, history: int
    ) -> TakenRun | None:
        worker = self._fenced(worker_id, epoch)
        while worker.inputs:
            item = worker.inputs[0]
            if item.seq > worker.record.done_seq:
                claim = self._begin(worker, item, run_id, ts)
                entries = worker.transcript.before(None, history) if history > 0 else []
                lines = [TranscriptEntry.model_validate_json(raw) for _, raw in entries]
                return TakenRun(item, claim, [(e.role.value, e.text) for e in lines])
            self._ack(worker, item)  # a redelivery of a finished run
        return None

    def _begin(self, worker: _Worker, item: QueuedInput, run_id: str, ts: float) -> RunClaim:
        record = worker.record
        worker_id = record.worker_id
        first = record.run_seq != item.seq
        record.run_attempt = 1 if first else record.run_attempt + 1
        record.run_seq = item.seq
        record.run_id = run_id
        record.run_input_id = item.input_id
        if first:
            self._note(
                worker,
                TranscriptEntry(
                    role=TranscriptRole.USER,
                    text=item.text,
                    ts=item.ts,
                    input_id=item.input_id,
                    run_id=run_id,
                ),
            )
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
        return RunClaim(
            run_id, record.run_attempt, item.seq <= record.cancel_upto, record.run_cursor
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
        for event in final_events(worker_id, run_id, item, outcome, ts):
            self._emit(worker, event)
        self._note(worker, transcript_for(run_id, item, outcome, ts))
        usage = record.usage
        usage.input_tokens += outcome.input_tokens
        usage.output_tokens += outcome.output_tokens
        usage.runs += 1
        usage.runs_by_result[outcome.result.value] = (
            usage.runs_by_result.get(outcome.result.value, 0) + 1
        )
        if outcome.error_code:
            usage.last_error = outcome.error_code
        record.done_seq = item.seq
        record.run_id = record.run_input_id = record.run_cursor = None
        self._ack(worker, item)
        self._set_state(worker, final_state(record))
        self._notify(worker)
        return record.queue_depth > 0 or bool(worker.inputs)

    def _ack(self, worker: _Worker, item: QueuedInput) -> None:
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
