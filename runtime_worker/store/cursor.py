"""Cursors are Redis stream ids (`<ms>-<n>`) in every store; opaque to clients.

The one place cursors are parsed, formatted and compared with a trimmed window, so every store
answers a stale or a future cursor the same way.
"""

from __future__ import annotations

import re

from shared.errors import CursorExpired, InvalidInput
from shared.ids import CURSOR_PATTERN
from shared.timeutil import now_ms

_CURSOR_RE = re.compile(CURSOR_PATTERN)
MAX_PART = 2**64 - 1
"""The largest value either half of a stream id may hold (Redis stores them as u64)."""

Cursor = tuple[int, int]


def parse_cursor(value: str) -> Cursor:
    """`"0"`, `"<ms>"` or `"<ms>-<n>"`; anything else is the caller's mistake (`InvalidInput`).

    Every cursor of that form (what OpenAPI states) is a position: a half larger than any id
    can hold is read as `MAX_PART`, which orders the same against every id a log can reach."""
    if _CURSOR_RE.fullmatch(value) is None:  # `fullmatch`: no trailing newline slips past `$`
        raise InvalidInput("malformed cursor")
    head, _, tail = value.partition("-")
    return min(int(head), MAX_PART), min(int(tail or 0), MAX_PART)


def format_cursor(cursor: Cursor) -> str:
    return f"{cursor[0]}-{cursor[1]}"


def just_before(cursor: Cursor) -> Cursor:
    """The id right before `cursor`: reading after it starts with the entry at `cursor`."""
    ms, seq = cursor
    if seq > 0:
        return ms, seq - 1
    if ms == 0:
        return 0, 0
    return ms - 1, MAX_PART


def check_window(after: Cursor, first: Cursor | None, last: Cursor, trimmed: bool) -> None:
    """Judge a reader's `after` against a log whose oldest retained entry is `first` (None when
    empty) and newest is `last` (`(0, 0)` when none was ever written). A cursor past the end was
    never handed out: `InvalidInput`. One older than the window (`trimmed`: entries were dropped)
    is `CursorExpired` with the cursor to resume from: reading after it yields the oldest
    retained entry first."""
    if after > last:
        raise InvalidInput("the cursor is ahead of the newest event")
    if trimmed and first is not None:
        oldest = just_before(first)
        if after < oldest:
            raise CursorExpired(
                "the cursor is older than the retained events",
                oldest_cursor=format_cursor(oldest),
            )


class CursorClock:
    """Hands out strictly increasing stream ids, the way Redis does for `XADD *`."""

    def __init__(self, last: tuple[int, int] = (0, 0)) -> None:
        # `last`: the newest id a reopened durable store holds, so ids keep increasing past it.
        self._last = last

    def next(self) -> Cursor:
        ms = now_ms()
        self._last = (ms, 0) if ms > self._last[0] else (self._last[0], self._last[1] + 1)
        return self._last
