"""One place for clocks, so tests and code agree on units (seconds as float, or *_ms ints)."""

from __future__ import annotations

import time


def now_s() -> float:
    """Wall-clock seconds since the epoch, for timestamps people read."""
    return time.time()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def monotonic_s() -> float:
    """For deadlines and intervals: never jumps with the wall clock."""
    return time.monotonic()
