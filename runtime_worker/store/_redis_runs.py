"""The Redis store's run log reads: a run's final transcript entry (the one with a `result`,
written by lua/finish_run.lua) is its record, so the log is the transcript, read newest first
and kept to the entries that end runs."""

from __future__ import annotations

from collections.abc import AsyncIterator

from runtime_worker.store import _redis_codec as codec
from runtime_worker.store._redis_client import Client
from runtime_worker.store._scripts import answer
from runtime_worker.store.base import RunLogPage
from runtime_worker.store.cursor import format_cursor, parse_cursor
from runtime_worker.store.outcome import run_of
from shared.errors import WorkerNotFound
from shared.keys import WorkerKeys
from shared.models import RunDetail

_SCAN_PAGE = 200


async def _newest_first(
    client: Client, keys: WorkerKeys, worker_id: str, upper: str
) -> AsyncIterator[tuple[str, str]]:
    """Transcript entries (id, JSON) older than `upper`, newest first, a page at a time."""
    if not await answer(client.exists(keys.record)):
        raise WorkerNotFound(f"no worker {worker_id}")
    while True:
        page = await answer(client.xrevrange(keys.transcript, upper, "-", count=_SCAN_PAGE))
        for entry_id, fields in page:
            yield entry_id, fields["t"]
        if len(page) < _SCAN_PAGE:
            return
        upper = "(" + page[-1][0]


async def read_runs(
    client: Client, keys: WorkerKeys, worker_id: str, limit: int, before: str | None
) -> RunLogPage:
    """One run past the page is looked for, only to tell `next_before`."""
    upper = "+" if before is None else "(" + format_cursor(parse_cursor(before))
    found: list[tuple[str, RunDetail]] = []
    async for entry_id, raw in _newest_first(client, keys, worker_id, upper):
        run = run_of(codec.parse_transcript(entry_id, raw))
        if run is not None:
            found.append((entry_id, run))
            if len(found) > limit:
                break
    page = found[: max(limit, 0)]
    more = len(found) > len(page) and bool(page)
    return RunLogPage(runs=page, next_before=page[-1][0] if more else None)


async def find_run(
    client: Client, keys: WorkerKeys, worker_id: str, run_id: str
) -> RunDetail | None:
    marker = f'"run_id":"{run_id}"'  # parse only the likely entries
    async for entry_id, raw in _newest_first(client, keys, worker_id, "+"):
        if marker in raw:
            run = run_of(codec.parse_transcript(entry_id, raw))
            if run is not None and run.run_id == run_id:
                return run
    return None
