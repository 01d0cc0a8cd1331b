"""`RedisReaders`: the `Readers` role of `RedisStore`: Worker records and listings (each reading
only the fields it shows), the placement view, and the event, transcript and run-log reads.

Apart from the writes so every read path, and the lazy index repair the listings share
(`_unindex`), is in one module; none of these changes a Worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from runtime_worker.placement import HOSTABLE_STATES
from runtime_worker.store import _redis_codec as codec
from runtime_worker.store import _redis_runs as runs
from runtime_worker.store._redis_batch import (
    PLACEMENT_FIELDS,
    Placement,
    PlacementRead,
    hmget_many,
    packed,
    parse_placement,
    send_many,
)
from runtime_worker.store._redis_blocking import block_read
from runtime_worker.store._redis_core import RedisCore, field_of
from runtime_worker.store._redis_mux import RedisEventMux
from runtime_worker.store._scripts import (
    CLUSTER_ERRORS,
    TRANSPORT_ERRORS,
    answer,
    argv,
    check,
    translate_errors,
)
from runtime_worker.store.base import EventMux, Listed, RecordAt, RunLogPage, WorkerRecord
from runtime_worker.store.cursor import check_window, format_cursor, parse_cursor
from shared.errors import WorkerNotFound
from shared.events import Event
from shared.keys import is_worker_key_part
from shared.models import RunDetail, TranscriptPage, WorkerState
from shared.settings import MIN_EVENTS_MAXLEN

LISTED_FIELDS = ("display_name", "profile", "state", "created_at")
PLACEMENT_PAGE = 10_000  # records per call of a full sweep or a listing
UNHOSTED_PAGE = 10_000  # candidates per steady-state sweep
TRUSTED_PAGE = MIN_EVENTS_MAXLEN  # the fewest events trimming ever leaves: see `_follow`
T = TypeVar("T")
_STATES = {state.value: state for state in WorkerState}


async def _in_pages(
    worker_ids: list[str], read: Callable[[list[str]], Awaitable[list[T]]]
) -> list[T]:
    """`read` a page of `PLACEMENT_PAGE` Workers per call, one after another (each call has
    its own deadline: 100,000 records take longer than one)."""
    found: list[T] = []
    for start in range(0, len(worker_ids), PLACEMENT_PAGE):
        found += await read(worker_ids[start : start + PLACEMENT_PAGE])
    return found


class _Page(NamedTuple):
    """One page of a placement read: the records found, the Workers whose records are gone,
    and those on a node that did not answer (unknown: neither)."""

    rows: list[Placement]
    gone: list[str]
    unknown: set[str]


class RedisReaders(RedisCore):
    """A part of `RedisStore` (see there)."""

    @translate_errors
    async def get_worker(self, worker_id: str) -> WorkerRecord:
        fields = await answer(self.client.hgetall(self._worker_keys(worker_id).record))
        if not fields:
            raise WorkerNotFound(f"no worker {worker_id}")
        return codec.record_from_fields(fields, worker_id)

    @translate_errors
    async def get_worker_at(self, worker_id: str) -> RecordAt:
        keys = self._worker_keys(worker_id)
        newest_event = packed("XREVRANGE", keys.events, "+", "-", "COUNT", 1)
        flat, newest = await send_many(
            self._transport, [packed("HGETALL", keys.record), newest_event]
        )
        for reply in (flat, newest):
            if isinstance(reply, Exception):
                raise reply
        if not flat:
            raise WorkerNotFound(f"no worker {worker_id}")
        record = codec.record_from_fields(dict(zip(flat[::2], flat[1::2], strict=True)), worker_id)
        return RecordAt(record, str(newest[0][0]) if newest else "0")

    async def list_workers(self) -> list[WorkerRecord]:
        """Every record, read a page per call (`PLACEMENT_PAGE`), each with its own deadline:
        100,000 records take longer than one."""
        return await _in_pages(await self._indexed_now(), self._records_of)

    @translate_errors
    async def _records_of(self, worker_ids: list[str]) -> list[WorkerRecord]:
        commands = [packed("HGETALL", self.keys.record(worker_id)) for worker_id in worker_ids]
        replies = await send_many(self._transport, commands)
        found: list[WorkerRecord] = []
        gone: list[str] = []
        for worker_id, flat in zip(worker_ids, replies, strict=True):
            if isinstance(flat, Exception):
                raise flat
            if not flat:
                gone.append(worker_id)
                continue
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            found.append(codec.record_from_fields(fields, worker_id))
        await self._unindex(gone)
        return found

    async def listing(self) -> list[Listed]:
        """Five fields of each record, not the whole hash, a page per call as `list_workers`:
        listing 100,000 Workers stays within every call's deadline."""
        return await _in_pages(await self._indexed_now(), self._listed_of)

    @translate_errors
    async def _listed_of(self, worker_ids: list[str]) -> list[Listed]:
        keys = [self.keys.record(worker_id) for worker_id in worker_ids]
        rows = await hmget_many(self._transport, keys, LISTED_FIELDS)
        found: list[Listed] = []
        gone: list[str] = []
        for worker_id, (name, profile, state, created_at) in zip(worker_ids, rows, strict=True):
            if state is None:
                gone.append(worker_id)
            else:
                found.append(Listed(worker_id, name, profile, _STATES[state], float(created_at)))
        await self._unindex(gone)
        return found

    async def placements(self) -> PlacementRead:
        """What placement needs of every Worker (state, host, epoch, queue depth, run), read
        without the rest of the records: a member's sweep costs a few fields per Worker. Read
        a page per call, each with its own deadline: 100,000 Workers take longer than one."""
        worker_ids = await self._indexed_now()
        rows: list[Placement] = []
        complete = True
        for start in range(0, len(worker_ids), PLACEMENT_PAGE):
            page = await self._placements_of(worker_ids[start : start + PLACEMENT_PAGE], True)
            rows += page.rows
            complete = complete and not page.unknown
        return PlacementRead(rows, complete)

    @translate_errors
    async def unhosted(self) -> PlacementRead:
        """`placements` of the Workers that may need a host (the unhosted set, at most
        `UNHOSTED_PAGE` of them, a random choice: sweeps in turn see them all). Those that
        ended or are gone leave the set here; those on a node that did not answer stay."""
        (worker_ids,) = await send_many(
            self._transport, [packed("SRANDMEMBER", self.keys.unhosted(), UNHOSTED_PAGE)]
        )
        if isinstance(worker_ids, Exception):
            raise worker_ids
        read = await self._placements_of(worker_ids, False)
        live = {p.worker_id for p in read.rows if p.state in HOSTABLE_STATES}
        left = [w for w in worker_ids if w not in live and w not in read.unknown]
        await self._set_many("SREM", self.keys.unhosted(), left)
        return PlacementRead([p for p in read.rows if p.worker_id in live], not read.unknown)

    @translate_errors
    async def _indexed_now(self) -> list[str]:
        return await self._indexed()

    @translate_errors
    async def _placements_of(self, worker_ids: list[str], unindex: bool) -> _Page:
        valid = [w for w in worker_ids if is_worker_key_part(w)]
        keys = [self.keys.record(worker_id) for worker_id in valid]
        rows = await self._rows_by_node(keys, PLACEMENT_FIELDS)
        found: list[Placement] = []
        gone: list[str] = []
        unknown: set[str] = set()
        for worker_id, row in zip(valid, rows, strict=True):
            if row is None:  # its node did not answer
                unknown.add(worker_id)
                continue
            placement = parse_placement(worker_id, row)
            if placement is None:
                gone.append(worker_id)
            else:
                found.append(placement)
        if unindex:
            await self._unindex(gone)
        return _Page(found, gone, unknown)

    async def _rows_by_node(
        self, keys: Sequence[str], fields: Sequence[str]
    ) -> list[list[Any] | None]:
        """`hmget_many`; on a cluster each node's part waits half a call's deadline at most, and
        a node that does not answer leaves its rows None while the others' stand
        (`RuntimeUnavailable`, from the caller's `translate_errors`, only when none answered)."""
        if not self.cluster:
            return list(await hmget_many(self._transport, keys, fields))
        by_node: dict[str, list[int]] = {}
        for index, key in enumerate(keys):
            by_node.setdefault(self._transport.node_name(key), []).append(index)
        groups = list(by_node.values())
        answers = await asyncio.gather(
            *(self._node_rows([keys[i] for i in group], fields) for group in groups),
            return_exceptions=True,  # every part ends before any error is raised
        )
        parts: list[list[list[Any]] | None] = []
        for answered in answers:
            if isinstance(answered, BaseException):
                raise answered
            parts.append(answered)
        if groups and all(part is None for part in parts):
            raise TimeoutError("no node answered")  # `translate_errors`: RuntimeUnavailable
        rows: list[list[Any] | None] = [None] * len(keys)
        for group, part in zip(groups, parts, strict=True):
            if part is not None:
                for index, row in zip(group, part, strict=True):
                    rows[index] = row
        return rows

    async def _node_rows(
        self, keys: Sequence[str], fields: Sequence[str]
    ) -> list[list[Any]] | None:
        """One node's rows, or None when it does not answer within half a call's deadline."""
        try:
            async with asyncio.timeout(self.call_timeout_s / 2):
                return await hmget_many(self._transport, keys, fields)
        except (*TRANSPORT_ERRORS, *CLUSTER_ERRORS):
            return None

    async def _indexed(self) -> list[str]:
        worker_ids: list[str] = await answer(self.client.zrange(self.keys.workers(), 0, -1))
        return worker_ids

    async def _unindex(self, gone: list[str]) -> None:
        """Retention expired these Workers' keys: drop them from the index lazily. A Worker
        whose record appears now was being created (`create` retried after Redis lost its
        scripts indexes it before its record): it goes back, so none is lost from the index."""
        if not gone:
            return
        await answer(self.client.zrem(self.keys.workers(), *gone))
        keys = [self.keys.record(worker_id) for worker_id in gone]
        rows = await hmget_many(self._transport, keys, ("created_at",))
        back = {w: float(row[0]) for w, row in zip(gone, rows, strict=True) if row[0] is not None}
        if back:
            await answer(self.client.zadd(self.keys.workers(), back))

    @translate_errors
    async def read_events(self, worker_id: str, after: str | None, limit: int) -> list[Event]:
        keys = self._worker_keys(worker_id)
        position = None if after is None else parse_cursor(after)
        start = "" if position is None else format_cursor(position)
        reply = await self._pipeline.run(
            self._scripts.read_events,
            keys.all(),
            argv("read_events", after=start, limit=max(limit, 0)),
        )
        entries, head, last, trimmed = check(reply, worker_id)
        if position is not None:
            newest = last or (entries[-1][0] if entries else "0")
            first = parse_cursor(head) if head else None
            check_window(position, first, parse_cursor(newest), bool(trimmed))
        return [
            codec.event_from_entry(worker_id, entry_id, field_of(raw, "e"))
            for entry_id, raw in entries
        ]

    @translate_errors
    async def tail_events(
        self, worker_id: str, after: str, limit: int, timeout_ms: int
    ) -> list[Event]:
        return await self._follow(worker_id, after, limit, timeout_ms)

    async def _follow(self, worker_id: str, after: str, limit: int, timeout_ms: int) -> list[Event]:
        """One blocking read after `after`; its entries are the answer when it cannot have
        skipped any: trimming leaves at least `events_maxlen` entries, never fewer than
        TRUSTED_PAGE, so a read after a trimmed-away cursor answers a full page. A full page, or
        nothing (the Worker may be gone), is read again through the script, which tells."""
        key = self._worker_keys(worker_id).events
        position = format_cursor(parse_cursor(after))
        entries = await block_read(self._blocking, key, position, TRUSTED_PAGE, timeout_ms)
        if 0 < len(entries) < TRUSTED_PAGE:
            return [
                codec.event_from_entry(worker_id, entry_id, raw["e"])
                for entry_id, raw in entries[:limit]
            ]
        return await self.read_events(worker_id, after, limit)

    def event_mux(self) -> EventMux | None:
        """One server only: on a Redis Cluster a multi-key `XREAD` must stay within a slot."""
        if self.cluster:
            return None
        return RedisEventMux(self, self._blocking, self._transport)

    @translate_errors
    async def last_cursor(self, worker_id: str) -> str:
        keys = self._worker_keys(worker_id)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.exists(keys.record)
            pipe.xrevrange(keys.events, count=1)
            exists, newest = await pipe.execute()
        if not exists:
            raise WorkerNotFound(f"no worker {worker_id}")
        return str(newest[0][0]) if newest else "0"

    @translate_errors
    async def read_runs(self, worker_id: str, limit: int, before: str | None) -> RunLogPage:
        return await runs.read_runs(
            self.client, self._worker_keys(worker_id), worker_id, limit, before
        )

    @translate_errors
    async def find_run(self, worker_id: str, run_id: str) -> RunDetail | None:
        return await runs.find_run(self.client, self._worker_keys(worker_id), worker_id, run_id)

    @translate_errors
    async def read_transcript(
        self, worker_id: str, limit: int, before: str | None
    ) -> TranscriptPage:
        keys = self._worker_keys(worker_id)
        bound = None if before is None else parse_cursor(before)
        if bound == (0, 0):  # nothing is older than the first possible id
            if not await answer(self.client.exists(keys.record)):
                raise WorkerNotFound(f"no worker {worker_id}")
            return TranscriptPage(entries=[], next_before=None)
        upper = "+" if bound is None else "(" + format_cursor(bound)
        limit = max(limit, 0)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.exists(keys.record)
            pipe.xrevrange(keys.transcript, max=upper, min="-", count=limit + 1)
            exists, newest_first = await pipe.execute()
        if not exists:
            raise WorkerNotFound(f"no worker {worker_id}")
        more = len(newest_first) > limit
        page = newest_first[:limit][::-1]
        entries = [codec.parse_transcript(entry_id, fields["t"]) for entry_id, fields in page]
        return TranscriptPage(
            entries=entries, next_before=entries[0].cursor if more and entries else None
        )
