"""`MemoryHostSide`: the `HostSide` role of `MemoryStore`: wake-ups handed to the host in
process, leases, and the writes of a host's runs, each fenced by the lease epoch (and by the
run, for appends and finishes).

Apart from `memory.py` so what a host does to a Worker (take, append, finish, sweep) reads in
one place, as `take_run.lua` and `finish_run.lua` do for Redis.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence

from runtime_worker.store import outcome as runs
from runtime_worker.store._memory_base import MemoryBase
from runtime_worker.store._memory_records import MemoryWorker
from runtime_worker.store.base import QueuedInput, RunClaim, RunOutcome, TakenRun, WakeUp
from shared.errors import LeaseLost
from shared.events import Event, RunStarted
from shared.models import ENDED_STATES, TranscriptEntry, WorkerState
from shared.timeutil import monotonic_s


class MemoryHostSide(MemoryBase):
    """A mixin of `MemoryStore`; each method is atomic on the event loop (no await inside)."""

    async def wake_ups(self, member_id: str) -> AsyncGenerator[WakeUp, None]:
        async for wake in self._wakes.listen(member_id):
            yield wake

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

    async def append_events(
        self,
        worker_id: str,
        epoch: int,
        events: Sequence[Event],
        *,
        run_id: str,
        ahead: bool = False,
    ) -> str:
        worker = self._fenced(worker_id, epoch, run_id)
        if ahead:  # no take here confirms a run started ahead of it (`take_ahead` is None)
            raise LeaseLost(f"worker {worker_id}: run {run_id} was not started ahead")
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
        worker = self._fenced(worker_id, epoch, run_id)
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
