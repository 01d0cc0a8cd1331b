"""The memory store's run log readers: a run's final transcript entry (the one with a `result`)
is its record, as in the Redis store (runtime_worker/store/_redis_runs.py)."""

from __future__ import annotations

from runtime_worker.store._memory_records import MemoryWorker
from runtime_worker.store.base import RunLogPage
from runtime_worker.store.cursor import format_cursor, parse_cursor
from runtime_worker.store.outcome import run_of
from shared.models import RunDetail, TranscriptEntry


class MemoryRuns:
    """A mixin of `MemoryStore`; each method is atomic on the event loop (no await inside)."""

    def _get(self, worker_id: str) -> MemoryWorker:
        raise NotImplementedError

    async def read_runs(self, worker_id: str, limit: int, before: str | None) -> RunLogPage:
        log = self._get(worker_id).transcript
        bound = None if before is None else parse_cursor(before)
        found: list[tuple[str, RunDetail]] = []
        for cursor, raw in reversed(log.before(bound, len(log.ids))):
            if len(found) > limit:
                break
            run = run_of(TranscriptEntry.model_validate_json(raw))
            if run is not None:
                found.append((format_cursor(cursor), run))
        page = found[: max(limit, 0)]
        more = len(found) > len(page) and bool(page)
        return RunLogPage(runs=page, next_before=page[-1][0] if more else None)

    async def find_run(self, worker_id: str, run_id: str) -> RunDetail | None:
        marker = f'"run_id":"{run_id}"'  # parse only the likely entries
        for raw in reversed(self._get(worker_id).transcript.items):
            if marker in raw:
                run = run_of(TranscriptEntry.model_validate_json(raw))
                if run is not None and run.run_id == run_id:
                    return run
        return None
