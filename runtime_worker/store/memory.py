"""`MemoryStore`: the embedded runtime's store, and the reference for the Store contract.

Everything lives in this process; each method runs without awaiting in the middle, so each is
atomic on the event loop exactly as a Lua script is atomic on Redis. Cursors have the shape of
Redis stream ids (`<ms>-<n>`) so clients cannot tell the two stores apart.

This module holds construction, the Worker lookup and the gateway's input path (create, stop,
scope, submit, cancel); the host side is `_memory_host.py`, the readers `_memory_reads.py` and
`_memory_runs.py`, and the steps every write shares `_memory_base.py`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from runtime_worker.store._memory_conversations import MemoryConversations
from runtime_worker.store._memory_host import MemoryHostSide
from runtime_worker.store._memory_reads import MemoryReaders
from runtime_worker.store._memory_records import Known, Log, MemoryWorker, ScopeClaims, WakeQueues
from runtime_worker.store._memory_runs import MemoryRuns
from runtime_worker.store._memory_webhooks import MemoryWebhooks
from runtime_worker.store.base import (
    CancelOutcome,
    QueuedInput,
    RecordAt,
    Store,
    Submission,
    WorkerRecord,
)
from runtime_worker.store.bounds import text_digest
from runtime_worker.store.cursor import CursorClock, format_cursor
from runtime_worker.store.schedules import MemorySchedules
from shared.errors import (
    InputIdConflict,
    InvalidInput,
    RateLimited,
    WorkerBusy,
    WorkerNotFound,
    WorkerStopped,
)
from shared.events import StateChanged, UserMessage
from shared.models import LIVE_STATES, ScopeEntry, Strategy, WorkerState
from shared.settings import Settings
from shared.timeutil import monotonic_s, now_s


class MemoryStore(
    MemoryConversations,
    MemoryRuns,
    MemorySchedules,
    MemoryWebhooks,
    MemoryHostSide,
    MemoryReaders,
    Store,
):
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
