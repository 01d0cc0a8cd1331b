"""Cursors are Redis stream ids (`<ms>-<n>`) in every store; opaque to clients."""

from __future__ import annotations

import re

from shared.errors import InvalidInput
from shared.timeutil import now_ms

_CURSOR_RE = re.compile(r"^(\d{1,20})(?:-(\d{1,20}))?$")


def parse_cursor(value: str) -> tuple[int, int]:
    """`"0"`, `"<ms>"` or `"<ms>-<n>"`; anything else is the caller's mistake."""
    match = _CURSOR_RE.match(value)
    if match is None:
        raise InvalidInput("malformed cursor")
    return int(match.group(1)), int(match.group(2) or 0)


def format_cursor(cursor: tuple[int, int]) -> str:
    return f"{cursor[0]}-{cursor[1]}"


class CursorClock:
    """Hands out strictly increasing stream ids, the way Redis does for `XADD *`."""

    def __init__(self) -> None:
        self._last = (0, 0)

    def next(self) -> tuple[int, int]:
        ms = now_ms()
        self._last = (ms, 0) if ms > self._last[0] else (self._last[0], self._last[1] + 1)
        return self._last
