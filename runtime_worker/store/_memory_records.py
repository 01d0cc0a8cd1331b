"""The memory store's parts: a trimmed log with stream-id cursors, the two-generation dedupe
memory of input ids, one Worker's state, the scope claims and the members' wake-up queues
(runtime_worker/store/memory.py puts them together)."""

from __future__ import annotations

import asyncio
import bisect
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field

from runtime_worker import scope as scopes
from runtime_worker.store.base import (
    QueuedInput,
    WakeUp,
    WorkerRecord,
)
from runtime_worker.store.bounds import DEDUPE_WINDOW
from runtime_worker.store.cursor import (
    Cursor,
    check_window,
    parse_cursor,
)
from shared.errors import ScopeConflict
from shared.models import ScopeEntry


@dataclass
class Log:
    """An append-only, trimmed log with stream-id cursors."""

    maxlen: int
    ids: list[Cursor] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    trimmed: bool = False

    def append(self, cursor: Cursor, item: str) -> None:
        self.ids.append(cursor)
        self.items.append(item)
        excess = len(self.ids) - self.maxlen
        if excess > 0:
            self.trimmed = True
            del self.ids[:excess]
            del self.items[:excess]

    @property
    def last(self) -> Cursor:
        return self.ids[-1] if self.ids else (0, 0)

    def check(self, after: str | None) -> Cursor:
        """`after` parsed and judged against the window (see `cursor.check_window`)."""
        if after is None:
            return (0, 0)
        cursor = parse_cursor(after)
        check_window(cursor, self.ids[0] if self.ids else None, self.last, self.trimmed)
        return cursor

    def after(self, cursor: Cursor, limit: int) -> list[tuple[Cursor, str]]:
        start = bisect.bisect_right(self.ids, cursor)
        return list(
            zip(self.ids[start : start + limit], self.items[start : start + limit], strict=True)
        )

    def before(self, cursor: Cursor | None, limit: int) -> list[tuple[Cursor, str]]:
        end = len(self.ids) if cursor is None else bisect.bisect_left(self.ids, cursor)
        start = max(0, end - limit)
        return list(zip(self.ids[start:end], self.items[start:end], strict=True))


@dataclass(frozen=True, slots=True)
class Known:
    """What the dedupe memory keeps of an accepted input."""

    seq: int
    cursor: str
    digest: str


@dataclass
class InputIds:
    """Two generations of `DEDUPE_WINDOW` input ids, as the Redis store keeps them."""

    current: dict[str, Known] = field(default_factory=dict)
    old: dict[str, Known] = field(default_factory=dict)

    def get(self, input_id: str) -> Known | None:
        return self.current.get(input_id) or self.old.get(input_id)

    def add(self, input_id: str, known: Known) -> None:
        if len(self.current) >= DEDUPE_WINDOW:
            self.old, self.current = self.current, {}
        self.current[input_id] = known


@dataclass
class MemoryWorker:
    record: WorkerRecord
    events: Log
    transcript: Log
    inputs: deque[QueuedInput] = field(default_factory=deque)
    input_ids: InputIds = field(default_factory=InputIds)
    lease_member: str | None = None
    lease_deadline: float = 0.0
    retire_at: float | None = None  # monotonic time this stopped Worker is forgotten
    # The process that ran the started run died (a durable store reopened mid-run): its next
    # attempt is a host loss, which `on_host_lost = "fail"` fails.
    host_lost: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def lease_held(self, now: float) -> bool:
        """Someone holds the lease and it has not run out (deadline 0: it never does)."""
        return self.lease_member is not None and (
            self.lease_deadline == 0.0 or self.lease_deadline > now
        )

    def holds(self, member_id: str, epoch: int, now: float) -> bool:
        """`member_id` holds the lease now, under `epoch`."""
        return ((self.lease_member, self.record.epoch) == (member_id, epoch)) and self.lease_held(
            now
        )

    def release(self, member_id: str, epoch: int, *, idle_only: bool) -> bool:
        """Give the lease back (`idle_only`: only with no unfinished input); whether it was."""
        if (self.lease_member, self.record.epoch) != (member_id, epoch) or (
            idle_only and self.record.next_seq > self.record.done_seq
        ):
            return False
        self.lease_member = None
        self.record.host = None
        return True

    def hold_lease(self, member_id: str, ttl_ms: int, now: float) -> None:
        self.lease_member = member_id
        self.lease_deadline = 0.0 if ttl_ms <= 0 else now + ttl_ms / 1000


class ScopeClaims:
    """Scope claims: worker id → (delegation group, scope), judged by runtime_worker/scope.py."""

    def __init__(self) -> None:
        self._claims: dict[str, tuple[str, list[ScopeEntry]]] = {}

    def claim(
        self,
        worker_id: str,
        scope: Sequence[ScopeEntry],
        delegated_from: str | None,
        *,
        live: Callable[[str], bool],
    ) -> None:
        group = worker_id
        if delegated_from is not None:
            group, parent_scope = self._claims.get(delegated_from, (delegated_from, []))
            if not scopes.covers(parent_scope, scope):
                raise ScopeConflict(
                    "a delegated worker may only hold a subset of its parent's scope"
                )
        if not scope:
            # Nothing to overlap, and nothing a child could inherit (a subset of nothing is
            # empty): no claim to judge or keep, so creating scopeless Workers stays O(1).
            return
        for other, (other_group, other_scope) in list(self._claims.items()):
            if other_group == group or not scopes.conflicts(scope, other_scope):
                continue
            if not live(other):
                del self._claims[other]  # a stale claim of an ended worker: reclaim it
                continue
            raise ScopeConflict("the requested write scope overlaps a live worker's scope")
        self._claims[worker_id] = (group, list(scope))

    def release(self, worker_id: str) -> None:
        self._claims.pop(worker_id, None)


WAKE_QUEUE_MAX = 10_000
"""Wake-ups kept for a member that is not listening; beyond that they are dropped (a host's
sweep finds the work anyway)."""


class WakeQueues:
    """One queue of wake-ups per member, kept while it is not listening (bounded)."""

    def __init__(self) -> None:
        self._queues: dict[str, asyncio.Queue[WakeUp]] = {}

    def _queue(self, member_id: str) -> asyncio.Queue[WakeUp]:
        return self._queues.setdefault(member_id, asyncio.Queue(maxsize=WAKE_QUEUE_MAX))

    def put(self, member_id: str, wake: WakeUp) -> None:
        queue = self._queue(member_id)
        if not queue.full():
            queue.put_nowait(wake)

    async def listen(self, member_id: str) -> AsyncGenerator[WakeUp, None]:
        queue = self._queue(member_id)
        while True:
            yield await queue.get()
