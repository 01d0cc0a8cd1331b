"""`MemoryBase`: what every part of `MemoryStore` stands on: its state and the few steps each
write is made of (fence by epoch, emit an event, note a transcript entry, change state, wake
readers and the host).

Apart from `memory.py` so the input path there, the host side (`_memory_host.py`) and the
readers (`_memory_reads.py`) share one definition of those steps. `_get` and `_find` stay
`MemoryStore`'s own: mixins declare them as stubs, and the class's own definition wins over all.
None of these awaits: each store method stays atomic on the event loop.
"""

from __future__ import annotations

import asyncio

from runtime_worker.store._memory_records import MemoryWorker, ScopeClaims, WakeQueues
from runtime_worker.store.base import WakeUp, WorkerRecord
from runtime_worker.store.cursor import CursorClock, format_cursor, parse_cursor
from shared.errors import LeaseLost
from shared.events import Event, StateChanged
from shared.models import TranscriptEntry, WorkerState
from shared.settings import Settings
from shared.timeutil import monotonic_s, now_s


class MemoryBase:
    """The state `MemoryStore.__init__` sets, and the steps its writes share."""

    _settings: Settings
    _workers: dict[str, MemoryWorker]
    _claims: ScopeClaims
    _wakes: WakeQueues
    _clock: CursorClock

    def _get(self, worker_id: str) -> MemoryWorker:
        raise NotImplementedError  # MemoryStore's

    def _find(self, worker_id: str) -> MemoryWorker | None:
        raise NotImplementedError  # MemoryStore's

    def _fenced(self, worker_id: str, epoch: int, run_id: str | None = None) -> MemoryWorker:
        """The Worker, if `epoch` is its own and (for a run's writes) `run_id` its current run,
        as `fence` in `lua/_prelude.lua` checks."""
        worker = self._get(worker_id)
        if worker.record.epoch != epoch:
            raise LeaseLost(f"worker {worker_id} is at epoch {worker.record.epoch}, not {epoch}")
        if run_id is not None and worker.record.run_id != run_id:
            raise LeaseLost(f"worker {worker_id}: run {run_id} is not its current run")
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

    def _wake(self, record: WorkerRecord, *, cancels: bool) -> None:
        if record.host is not None:  # no host yet: the one that acquires it drains what waits
            self._wakes.put(record.host, WakeUp(record.worker_id, cancels))
