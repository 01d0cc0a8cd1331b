"""CPU steal over a stretch of a run: the time the hypervisor gave this machine's vCPUs to
other guests. A latency measured while it was high measures the machine, and a ratio of two
sides measured one after the other is fair only if both saw about the same (a full run here
once read its ping-pong at 4x its quiet value, so every ratio to it read "met")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

PROC_STAT = Path("/proc/stat")
WARN_PCT = 3.0
"""Steal at or above this share of a side's CPU time is said beside its numbers."""


def cpu_ticks(stat: Path | None = None) -> tuple[int, int] | None:
    """(steal, all) ticks of every CPU so far, from `/proc/stat`; None where it cannot be read
    (not Linux) or says no steal (a kernel without the field)."""
    try:
        fields = (stat or PROC_STAT).read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if fields[0] != "cpu" or len(fields) < 9:
        return None
    ticks = [int(value) for value in fields[1:]]
    return ticks[7], sum(ticks[:8])  # user … steal; guest time is counted in user already


def meter(stat: Path | None = None) -> Callable[[], float | None]:
    """Started now; calling it answers the steal share (percent) since, or None unknown."""
    start = cpu_ticks(stat)

    def stop() -> float | None:
        end = cpu_ticks(stat)
        if start is None or end is None or end[1] <= start[1]:
            return None
        return round(100.0 * (end[0] - start[0]) / (end[1] - start[1]), 1)

    return stop
