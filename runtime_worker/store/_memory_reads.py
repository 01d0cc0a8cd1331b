"""`MemoryReaders`: the record, event and transcript reads of `MemoryStore`: none of them writes,
and a tail waits on the Worker's change event with its own deadline.

Apart from `memory.py` so the readers' path (the run log's is `_memory_runs.py`) is one short
module beside the writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

from runtime_worker.store._memory_base import MemoryBase
from runtime_worker.store.base import Listed, RecordAt, WorkerRecord
from runtime_worker.store.cursor import format_cursor, parse_cursor
from shared.events import Event, parse_event
from shared.models import TranscriptEntry, TranscriptPage
from shared.timeutil import monotonic_s


class MemoryReaders(MemoryBase):
    """A mixin of `MemoryStore`; each method is atomic on the event loop but a tail's wait."""

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
