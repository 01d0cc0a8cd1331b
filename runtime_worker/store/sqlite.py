"""`SqliteStore`: the embedded runtime's durable store, one SQLite file.

It is the `MemoryStore` with a file underneath, not a third copy of the Worker state machine:
every step runs the memory store's own logic (the one reference behaviour), then writes what
that step changed (records, appended or trimmed log entries, queued inputs, dedupe entries,
scope claims) in one SQLite transaction before it answers. Reads are served from memory;
opening the file loads it back. So memory and SQLite cannot drift, an acknowledged step is on
disk, and a process killed mid-run reopens consistent: the interrupted input is still
unacknowledged, and the host's recovery runs it as attempt 2 (or fails it with `host_lost`).

The write happens on the event loop right after the step, with no await in between: a step and
its commit are as atomic as the memory step alone, so no reader (an SSE stream, say) ever sees
an event the file lacks, and a cursor a client holds is never ahead of a reopened store. A
commit appends to the WAL without an fsync (`synchronous=NORMAL`): about 0.1 ms.

Leases are not stored: a reopened store has no host, and the epoch (stored) goes on from where
it was, so a write of the dead process's epoch could never be accepted.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from runtime_worker.store._redis_codec import parse_scope, scope_json
from runtime_worker.store._sqlite_codec import (
    Claims,
    Cursor,
    Dedupe,
    MemoryLog,
    MemoryWorker,
    Retirement,
    claims_of,
    dedupe_delta,
    input_body,
    newest_cursor,
    restore_dedupe,
    restore_worker,
    worker_row,
)
from runtime_worker.store._sqlite_file import Loaded, Op, SqliteFile
from runtime_worker.store.base import QueuedInput
from runtime_worker.store.cursor import CursorClock, parse_cursor
from runtime_worker.store.memory import MemoryStore
from shared.errors import RuntimeUnavailable
from shared.settings import Settings

log = logging.getLogger("yoi.store")

_UPSERT_WORKER = (
    "INSERT INTO workers VALUES (?, ?, ?) ON CONFLICT (worker_id) DO UPDATE SET "
    "record = excluded.record, extra = excluded.extra"
)


@dataclass
class _Saved:
    """What the file holds of one Worker, so a step writes only its difference."""

    row: tuple[str, str] = ("", "")
    events: tuple[Cursor, Cursor] = ((0, 0), (0, 0))  # (oldest, newest) stored cursor
    transcript: tuple[Cursor, Cursor] = ((0, 0), (0, 0))
    inputs: tuple[Cursor | None, Cursor] = (None, (0, 0))  # (oldest or None if empty, newest)
    dedupe: Dedupe = field(default_factory=dict)
    retirement: Retirement = field(default_factory=Retirement)


_READS = frozenset(
    {
        "delivery_counts",
        "doorbell",
        "get_worker",
        "get_worker_at",
        "is_cancelled",
        "last_cursor",
        "list_workers",
        "listing",
        "members",
        "next_input",
        "pending_work",
        "read_events",
        "read_transcript",
        "renew",  # lease deadlines only: leases are not durable
        "ring",
        "schedules",
        "tail_events",
        "wait_events",
    }
)
"""The memory store's steps that change nothing durable; every other one is persisted."""

T = TypeVar("T", bound="type[MemoryStore]")


def _persisted(step: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(step)
    async def persisted(self: SqliteStore, *args: Any, **kwargs: Any) -> Any:
        self._usable()
        try:
            return await step(self, *args, **kwargs)
        finally:  # a step that failed half-way (a stale claim reclaimed, say) is written too
            self._commit()

    return persisted


def _persist_every_step(cls: T) -> T:
    """Wrap each of the memory store's state-changing steps (any the store gains later too,
    unless named in `_READS`) so that it answers only once its changes are in the file."""
    for name in dir(MemoryStore):
        step = getattr(MemoryStore, name)
        if name.startswith("_") or name in _READS or name in vars(cls):
            continue
        if inspect.iscoroutinefunction(step):
            setattr(cls, name, _persisted(step))
    return cls


@_persist_every_step
class SqliteStore(MemoryStore):
    def __init__(self, path: Path, settings: Settings | None = None) -> None:
        super().__init__(settings)
        self._file = SqliteFile(path)
        self._saved: dict[str, _Saved] = {}
        self._saved_claims: dict[str, tuple[str, str]] = {}
        self._claims_seen: Claims = {}
        self._saved_schedules: dict[str, tuple[str, str | None]] = {}
        self._saved_schedules_version = -1
        self._touched: set[str] = set()
        self._broken = False
        self._closed = False
        self._restore(self._file.load())

    # -- loading -----------------------------------------------------------------------------

    def _restore(self, loaded: Loaded) -> None:
        logs: dict[str, dict[str, list[tuple[Cursor, str]]]] = {"events": {}, "transcript": {}}
        for name, rows in (("events", loaded.events), ("transcript", loaded.transcript)):
            for worker_id, ms, n, body in rows:
                logs[name].setdefault(worker_id, []).append(((ms, n), body))
        inputs: dict[str, list[str]] = {}
        for worker_id, _, _, body in loaded.inputs:
            inputs.setdefault(worker_id, []).append(body)
        dedupe: dict[str, list[tuple[str, str, str]]] = {}
        for worker_id, input_id, generation, body in loaded.dedupe:
            dedupe.setdefault(worker_id, []).append((input_id, generation, body))
        newest: Cursor = (0, 0)
        for worker_id, record_json, extra_json in loaded.workers:
            worker = restore_worker(
                record_json,
                extra_json,
                self._settings.events_maxlen,
                logs["events"].get(worker_id, []),
                logs["transcript"].get(worker_id, []),
                inputs.get(worker_id, []),
            )
            restore_dedupe(worker, dedupe.get(worker_id, []))
            self._workers[worker_id] = worker
            newest = max(newest, newest_cursor(worker))
        claims = claims_of(self)
        for worker_id, group, scope in loaded.claims:
            claims[worker_id] = (group, parse_scope(scope))
        self._clock = CursorClock(newest)
        for schedule_id, entry, mark in loaded.schedules:
            self._schedules[schedule_id] = entry
            if mark is not None:
                self._schedule_marks[schedule_id] = mark
        for worker_id in self._workers:
            self._diff(worker_id)  # the file's contents become the saved baseline
        self._diff_claims()
        self._diff_schedules()

    # -- writing -----------------------------------------------------------------------------

    def _diff(self, worker_id: str) -> list[Op]:
        """The statements that bring the file's copy of this Worker up to memory's."""
        worker = self._workers.get(worker_id)
        saved = self._saved.get(worker_id)
        if worker is None:
            if saved is None:
                return []
            del self._saved[worker_id]
            return [
                (f"DELETE FROM {table} WHERE worker_id = ?", (worker_id,))
                for table in ("workers", "events", "transcript", "inputs", "dedupe")
            ]
        if saved is None:
            saved = self._saved[worker_id] = _Saved()
        ops: list[Op] = []
        row = worker_row(worker, saved.retirement)
        if row != saved.row:
            saved.row = row
            ops.append((_UPSERT_WORKER, (worker_id, *row)))
        saved.events = _log_ops(ops, "events", worker_id, worker.events, saved.events)
        saved.transcript = _log_ops(
            ops, "transcript", worker_id, worker.transcript, saved.transcript
        )
        saved.inputs = _queue_ops(ops, worker_id, worker.inputs, saved.inputs)
        forget, write = dedupe_delta(worker, saved.dedupe)
        ops += [
            ("DELETE FROM dedupe WHERE worker_id = ? AND input_id = ?", (worker_id, input_id))
            for input_id in forget
        ]
        ops += [
            ("INSERT OR REPLACE INTO dedupe VALUES (?, ?, ?, ?, ?)", (worker_id, key, *entry))
            for key, entry in write.items()
        ]
        for input_id in forget:
            del saved.dedupe[input_id]
        saved.dedupe.update(write)
        return ops

    def _diff_claims(self) -> list[Op]:
        claims = claims_of(self)
        if claims == self._claims_seen:
            return []
        self._claims_seen = {w: (group, list(scope)) for w, (group, scope) in claims.items()}
        current = {w: (group, scope_json(scope)) for w, (group, scope) in claims.items()}
        ops: list[Op] = [
            ("DELETE FROM claims WHERE worker_id = ?", (w,))
            for w in self._saved_claims.keys() - current.keys()
        ]
        ops += [
            ("INSERT OR REPLACE INTO claims VALUES (?, ?, ?)", (w, *claim))
            for w, claim in current.items()
            if self._saved_claims.get(w) != claim
        ]
        self._saved_claims = current
        return ops

    def _diff_schedules(self) -> list[Op]:
        if self.schedules_version == self._saved_schedules_version:
            return []  # the hot steps (inputs, runs) never touch schedules
        self._saved_schedules_version = self.schedules_version
        current = {
            schedule_id: (entry, self._schedule_marks.get(schedule_id))
            for schedule_id, entry in self._schedules.items()
        }
        if current == self._saved_schedules:
            return []
        ops: list[Op] = [
            ("DELETE FROM schedules WHERE schedule_id = ?", (schedule_id,))
            for schedule_id in self._saved_schedules.keys() - current.keys()
        ]
        ops += [
            ("INSERT OR REPLACE INTO schedules VALUES (?, ?, ?)", (schedule_id, *row))
            for schedule_id, row in current.items()
            if self._saved_schedules.get(schedule_id) != row
        ]
        self._saved_schedules = current
        return ops

    def _get(self, worker_id: str) -> MemoryWorker:
        # Every step reaches its Workers through here: those are the ones it may have changed.
        self._touched.add(worker_id)
        return super()._get(worker_id)

    def _usable(self) -> None:
        if self._broken or self._closed:
            raise RuntimeUnavailable("the embedded store cannot write")

    def _commit(self) -> None:
        """Write what the step that just ran changed, in one transaction, before it answers."""
        ops: list[Op] = []
        touched, self._touched = self._touched, set()
        for worker_id in touched:
            ops += self._diff(worker_id)
        if len(self._saved) != len(self._workers):  # a Worker was created, or retired
            for worker_id in self._saved.keys() ^ self._workers.keys():
                ops += self._diff(worker_id)
        ops += self._diff_claims()
        ops += self._diff_schedules()
        if not ops:
            return
        self._usable()
        try:
            self._file.write(ops)
        except sqlite3.Error as exc:
            # Memory is now ahead of the file: refuse every later step rather than diverge.
            self._broken = True
            log.error(
                "the embedded store failed to write (%s): it refuses work", type(exc).__name__
            )
            raise RuntimeUnavailable("the embedded store cannot write") from None

    async def ping(self) -> None:
        self._usable()

    async def aclose(self) -> None:
        if self._closed:
            return
        try:
            if not self._broken:
                self._commit()  # what reads changed (a stopped Worker's retention ran out)
        finally:
            self._closed = True
            self._file.close()


def check_free(path: Path) -> None:
    """Raise `RuntimeUnavailable` now, before serving, when another process holds the file."""
    SqliteFile(path).close()


def _queue_ops(
    ops: list[Op], worker_id: str, inputs: deque[QueuedInput], saved: tuple[Cursor | None, Cursor]
) -> tuple[Cursor | None, Cursor]:
    """Inputs are appended at the end and acknowledged from the front: insert the new ones,
    delete the acknowledged ones; the new bounds."""
    oldest, newest = saved
    fresh: list[tuple[Cursor, QueuedInput]] = []
    for item in reversed(inputs):
        cursor = parse_cursor(item.entry_id)
        if cursor <= newest:
            break
        fresh.append((cursor, item))
    for (ms, n), item in reversed(fresh):
        ops.append(("INSERT INTO inputs VALUES (?, ?, ?, ?)", (worker_id, ms, n, input_body(item))))
    if fresh:
        newest = fresh[0][0]
    first = parse_cursor(inputs[0].entry_id) if inputs else None
    if oldest is not None and (first is None or first > oldest):
        bound = first or (newest[0], newest[1] + 1)
        ops.append(
            (
                "DELETE FROM inputs WHERE worker_id = ? AND (ms < ? OR (ms = ? AND n < ?))",
                (worker_id, bound[0], bound[0], bound[1]),
            )
        )
    return first, newest


def _log_ops(
    ops: list[Op], table: str, worker_id: str, log_: MemoryLog, saved: tuple[Cursor, Cursor]
) -> tuple[Cursor, Cursor]:
    """Insert the entries appended since `saved`, delete the ones trimmed; the new bounds."""
    oldest, newest = saved
    for (ms, n), body in log_.after(newest, len(log_.ids)):
        ops.append((f"INSERT INTO {table} VALUES (?, ?, ?, ?)", (worker_id, ms, n, body)))
    if not log_.ids:
        return saved
    if log_.ids[0] > oldest:
        ms, n = log_.ids[0]
        ops.append(
            (
                f"DELETE FROM {table} WHERE worker_id = ? AND (ms < ? OR (ms = ? AND n < ?))",
                (worker_id, ms, ms, n),
            )
        )
    return log_.ids[0], log_.ids[-1]
