"""How one memory-store Worker maps to rows of the SQLite file, and back.

The only module that knows the memory store's per-Worker structures (`_Worker`, `_Log`, its
dedupe map): when they change, this changes, and the store around it does not.
"""

from __future__ import annotations

import dataclasses
import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from runtime_worker.store._redis_codec import record_fields, record_from_fields
from runtime_worker.store.base import QueuedInput, Submission
from runtime_worker.store.cursor import format_cursor, parse_cursor
from runtime_worker.store.memory import MemoryStore, _Log, _Worker
from shared.models import ScopeEntry
from shared.timeutil import monotonic_s, now_s

Cursor = tuple[int, int]
MemoryWorker = _Worker
MemoryLog = _Log
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


def worker_row(worker: _Worker, retirement: Retirement) -> tuple[str, str]:
    """The Worker's record and the rest of its small state (trim flags, retention)."""
    extra = {
        "events_trimmed": format_cursor(worker.events.trimmed_upto),
        "transcript_trimmed": format_cursor(worker.transcript.trimmed_upto),
        "retire_at_s": retirement.wall(None),  # this memory store keeps stopped Workers
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
) -> _Worker:
    record = record_from_fields(json.loads(record_json))
    record.host = None  # nobody holds a lease in a process that just started
    extra = json.loads(extra_json)
    worker = _Worker(
        record,
        _restored_log(events_maxlen, events, parse_cursor(extra["events_trimmed"])),
        _restored_log(
            record.transcript_maxlen, transcript, parse_cursor(extra["transcript_trimmed"])
        ),
        deque(QueuedInput(**json.loads(body)) for body in inputs),
    )
    return worker


def input_body(item: QueuedInput) -> str:
    return json.dumps(dataclasses.asdict(item), separators=_COMPACT)


def newest_cursor(worker: _Worker) -> Cursor:
    """The newest id the Worker holds anywhere, so a reopened clock goes on past it."""
    found = [*worker.events.ids[-1:], *worker.transcript.ids[-1:]]
    found += [parse_cursor(item.entry_id) for item in worker.inputs]
    return max(found, default=(0, 0))


def _restored_log(maxlen: int, rows: Iterable[tuple[Cursor, str]], trimmed: Cursor) -> _Log:
    restored = _Log(maxlen, trimmed_upto=trimmed)
    for cursor, body in rows:
        restored.append(cursor, body)
    return restored


def dedupe_delta(worker: _Worker, saved: Dedupe) -> tuple[set[str], Dedupe]:
    """(input ids to forget, entries to write) that bring `saved` to the Worker's dedupe memory.
    The usual step (one input added, or none) costs O(1)."""
    known = worker.input_ids
    if len(known) == len(saved) and (not known or next(reversed(known)) in saved):
        return set(), {}
    if len(known) == len(saved) + 1 and next(reversed(known)) not in saved:
        newest = next(reversed(known))
        return set(), {newest: _entry(known[newest])}
    wanted = {input_id: _entry(submission) for input_id, submission in known.items()}
    changed = {key: entry for key, entry in wanted.items() if saved.get(key) != entry}
    return saved.keys() - wanted.keys(), changed


def _entry(submission: Submission) -> tuple[str, int, str]:
    body = json.dumps(dataclasses.asdict(submission), separators=_COMPACT)
    return "current", submission.seq, body


def restore_dedupe(worker: _Worker, rows: Iterable[tuple[str, str, str]]) -> None:
    """Rows of (input_id, generation, body), oldest first."""
    for input_id, _generation, body in rows:
        worker.input_ids[input_id] = Submission(**json.loads(body))


def claims_of(store: MemoryStore) -> Claims:
    """The memory store's scope claims (worker id → (delegation group, scope)), to read and,
    when reopening, to fill."""
    return store._claims
