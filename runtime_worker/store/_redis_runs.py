"""The Redis store's run log reads: `…:runs` is a stream written by lua/finish_run.lua (one entry
per finished run: `r` its run id, `e` its JSON), trimmed exactly to `transcript_maxlen`."""

from __future__ import annotations

from redis.asyncio import Redis

from runtime_worker.store import _redis_codec as codec
from runtime_worker.store._scripts import answer
from runtime_worker.store.base import RunLogPage
from runtime_worker.store.cursor import format_cursor, parse_cursor
from shared.errors import WorkerNotFound
from shared.keys import WorkerKeys
from shared.models import RunDetail

_SCAN_PAGE = 100


async def read_runs(
    client: Redis, keys: WorkerKeys, worker_id: str, limit: int, before: str | None
) -> RunLogPage:
    bound = None if before is None else parse_cursor(before)
    upper = "+" if bound is None else "(" + format_cursor(bound)
    limit = max(limit, 0)
    async with client.pipeline(transaction=False) as pipe:
        pipe.exists(keys.record)
        pipe.xrevrange(keys.runs, max=upper, min="-", count=limit + 1)
        exists, newest_first = await pipe.execute()
    if not exists:
        raise WorkerNotFound(f"no worker {worker_id}")
    page = newest_first[:limit]
    more = len(newest_first) > limit and bool(page)
    return RunLogPage(
        runs=[(entry_id, codec.parse_run(fields["e"])) for entry_id, fields in page],
        next_before=page[-1][0] if more else None,
    )


async def find_run(
    client: Redis, keys: WorkerKeys, worker_id: str, run_id: str
) -> RunDetail | None:
    """A scan of the bounded log, newest first, by the `r` field (no JSON parsed on the way)."""
    if not await answer(client.exists(keys.record)):
        raise WorkerNotFound(f"no worker {worker_id}")
    upper = "+"
    while True:
        entries = await answer(client.xrevrange(keys.runs, max=upper, min="-", count=_SCAN_PAGE))
        for _, fields in entries:
            if fields.get("r") == run_id:
                return codec.parse_run(fields["e"])
        if len(entries) < _SCAN_PAGE:
            return None
        upper = "(" + entries[-1][0]
