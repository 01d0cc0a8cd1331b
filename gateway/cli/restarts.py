"""How `yoi up` restarts a runtime process that died: exponential backoff, and a budget of
restarts within a sliding window (a process that keeps dying is not restarted forever)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.timeutil import monotonic_s

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 10.0


@dataclass
class RestartBudget:
    """One per runtime process slot. `next_delay()` answers the wait before the next restart,
    or None when the budget (`limit` restarts within `window_s`) is spent."""

    limit: int
    window_s: float
    clock: Callable[[], float] = monotonic_s
    _restarts: deque[float] = field(default_factory=deque)

    def recent(self) -> int:
        """Restarts within the window, up to now."""
        now = self.clock()
        while self._restarts and now - self._restarts[0] >= self.window_s:
            self._restarts.popleft()
        return len(self._restarts)

    def next_delay(self) -> float | None:
        recent = self.recent()
        if recent >= self.limit:
            return None
        self._restarts.append(self.clock())
        return min(BACKOFF_FIRST_S * 2.0**recent, BACKOFF_MAX_S)
