"""The memory store's run log: one entry per finished run, bounded like the transcript (what
`…:runs` is in the Redis store)."""

from __future__ import annotations

from runtime_worker.store._memory_records import MemoryWorker
from runtime_worker.store.base import QueuedInput, RunLogPage, RunOutcome
from runtime_worker.store.cursor import Cursor, format_cursor, parse_cursor
from runtime_worker.store.outcome import run_record
from shared.models import RunDetail


def record_run(
    worker: MemoryWorker,
    cursor: Cursor,
    run_id: str,
    item: QueuedInput,
    outcome: RunOutcome,
    ts: float,
) -> None:
    """Called by `finish_run` while the record still names the run's attempt and start time."""
    record = worker.record
    run = run_record(
        run_id,
        item,
        outcome,
        ts,
        attempt=max(record.run_attempt, 1),
        started_at=record.run_started_at or ts,
    )
    worker.runs.append(cursor, run.model_dump_json())


class MemoryRuns:
    """A mixin of `MemoryStore`: the run log's readers (each atomic on the event loop)."""

    def _get(self, worker_id: str) -> MemoryWorker:
        raise NotImplementedError

    async def read_runs(self, worker_id: str, limit: int, before: str | None) -> RunLogPage:
        log = self._get(worker_id).runs
        bound = None if before is None else parse_cursor(before)
        found = log.before(bound, limit)
        more = bool(found) and log.ids[0] < found[0][0]
        runs = [
            (format_cursor(cursor), RunDetail.model_validate_json(raw))
            for cursor, raw in reversed(found)
        ]
        return RunLogPage(runs=runs, next_before=format_cursor(found[0][0]) if more else None)

    async def find_run(self, worker_id: str, run_id: str) -> RunDetail | None:
        marker = f'"run_id":"{run_id}"'  # parse only the likely one
        for raw in reversed(self._get(worker_id).runs.items):
            if marker in raw:
                run = RunDetail.model_validate_json(raw)
                if run.run_id == run_id:
                    return run
        return None
