"""How one memory-store Worker maps to rows of the SQLite file, and back.

The only module that knows the memory store's parts (`_memory_records`: a Worker's logs, queue,
two-generation dedupe memory and retention, the scope claims): when they change, this changes,
and the store around it does not.
"""

from __future__ import annotations

import dataclasses
import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from runtime_worker.store._memory_records import InputIds, Known, Log
from runtime_worker.store._memory_records import MemoryWorker as MemoryWorker
from runtime_worker.store._redis_codec import record_fields, record_from_fields
from runtime_worker.store.base import QueuedInput
from runtime_worker.store.cursor import Cursor as Cursor
from runtime_worker.store.cursor import parse_cursor
from runtime_worker.store.memory import MemoryStore
from shared.models import ScopeEntry
from shared.timeutil import monotonic_s, now_s

MemoryLog = Log
Claims = dict[str, tuple[str, list[ScopeEntry]]]
_COMPACT = (",", ":")
Dedupe = dict[str, tuple[str, int, str]]
"""input_id → (generation, seq, body) of a Worker's dedupe memory."""


@dataclass
class Retirement:
    """A stopped Worker's retention deadline: monotonic in memory, wall clock in the file
    (converted once, so an unchanged deadline does not rewrite the row)."""

    monotonic: float | None = None
    wall_s: float | None = None

    def wall(self, retire_at: float | None) -> float | None:
        if retire_at != self.monotonic:
            self.monotonic = retire_at
            self.wall_s = None if retire_at is None else now_s() + (retire_at - monotonic_s())
        return self.wall_s


def worker_row(worker: MemoryWorker, retirement: Retirement) -> tuple[str, str]:
    """The Worker's record and the rest of its small state (trim flags, retention)."""
    extra = {
        "events_trimmed": worker.events.trimmed,
        "transcript_trimmed": worker.transcript.trimmed,
        "retire_at_s": retirement.wall(worker.retire_at),
    }
    return (
        json.dumps(record_fields(worker.record), separators=_COMPACT),
        json.dumps(extra, separators=_COMPACT),
    )


def restore_worker(
    record_json: str,
    extra_json: str,
    events_maxlen: int,
    events: Iterable[tuple[Cursor, str]],
    transcript: Iterable[tuple[Cursor, str]],
    inputs: Iterable[str],
) -> MemoryWorker:
    record = record_from_fields(json.loads(record_json))
    record.host = None  # nobody holds a lease in a process that just started
    extra = json.loads(extra_json)
    worker = MemoryWorker(
        record,
        _restored_log(events_maxlen, events, bool(extra["events_trimmed"])),
        _restored_log(record.transcript_maxlen, transcript, bool(extra["transcript_trimmed"])),
        deque(QueuedInput(**json.loads(body)) for body in inputs),
    )
    # A run started and not finished was running in the process that died.
    worker.host_lost = record.run_seq > record.done_seq
    retire_at_s = extra.get("retire_at_s")
    if retire_at_s is not None:
        worker.retire_at = monotonic_s() + (float(retire_at_s) - now_s())
    return worker


def input_body(item: QueuedInput) -> str:
    return json.dumps(dataclasses.asdict(item), separators=_COMPACT)


def newest_cursor(worker: MemoryWorker) -> Cursor:
    """The newest id the Worker holds anywhere, so a reopened clock goes on past it."""
    found = [*worker.events.ids[-1:], *worker.transcript.ids[-1:]]
    found += [parse_cursor(item.entry_id) for item in worker.inputs]
    return max(found, default=(0, 0))


def _restored_log(maxlen: int, rows: Iterable[tuple[Cursor, str]], trimmed: bool) -> Log:
    restored = Log(maxlen)
    for cursor, body in rows:
        restored.append(cursor, body)
    restored.trimmed = restored.trimmed or trimmed
    return restored


def dedupe_delta(worker: MemoryWorker, saved: Dedupe) -> tuple[set[str], Dedupe]:
    """(input ids to forget, entries to write) that bring `saved` to the Worker's dedupe memory.
    The usual step (one input added, or none) costs O(1); a generation turning over, O(window)."""
    ids = worker.input_ids
    total = len(ids.current) + len(ids.old)
    old_kept = not ids.old or saved.get(next(iter(ids.old)), ("",))[0] == "old"
    if old_kept and total == len(saved) == 0:
        return set(), {}
    if old_kept and ids.current:
        newest = next(reversed(ids.current))
        if total == len(saved) and saved.get(newest, ("",))[0] == "current":
            return set(), {}
        if total == len(saved) + 1 and newest not in saved:
            return set(), {newest: _entry("current", ids.current[newest])}
    wanted: Dedupe = {}
    for generation, known in (("old", ids.old), ("current", ids.current)):
        for input_id, entry in known.items():
            wanted[input_id] = _entry(generation, entry)
    changed = {key: entry for key, entry in wanted.items() if saved.get(key) != entry}
    return saved.keys() - wanted.keys(), changed


def _entry(generation: str, known: Known) -> tuple[str, int, str]:
    return generation, known.seq, json.dumps(dataclasses.asdict(known), separators=_COMPACT)


def restore_dedupe(worker: MemoryWorker, rows: Iterable[tuple[str, str, str]]) -> None:
    """Rows of (input_id, generation, body), oldest first."""
    ids = InputIds()
    for input_id, generation, body in rows:
        target = ids.current if generation == "current" else ids.old
        target[input_id] = Known(**json.loads(body))
    worker.input_ids = ids


def claims_of(store: MemoryStore) -> Claims:
    """The memory store's scope claims (worker id → (delegation group, scope)), to read and,
    when reopening, to fill."""
    return store._claims._claims
