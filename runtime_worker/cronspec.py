"""Cron expressions of recurring inputs, read by croniter and evaluated in a timezone.

Five fields (`minute hour day month weekday`, as crontab, with names such as `mon-fri` and
`jan`, and the aliases `@yearly`, `@monthly`, `@weekly`, `@daily`, `@hourly`), or six with
`second` first, so tests and short schedules can fire every few seconds. As in crontab, when
both day and weekday are restricted a time matches either. Times are unix seconds; the slots of
an expression are found in its timezone (an IANA name, UTC by default), so `0 9 * * *` in
`Europe/Paris` stays at 09:00 local time across daylight saving changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from shared.errors import InvalidInput

MAX_SLOTS = 1000


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown timezone {name!r}") from None


@dataclass(frozen=True)
class CronSpec:
    expr: str
    timezone: str = "UTC"

    @classmethod
    def parse(cls, expr: str, timezone: str = "UTC") -> CronSpec:
        expr = " ".join(expr.split())
        zone(timezone)
        fields = len(expr.split())
        if not (fields in (5, 6) or (fields == 1 and expr.startswith("@"))):
            raise InvalidInput(
                "a cron expression has 5 fields (or 6, seconds first) or is an alias"
            )
        if not croniter.is_valid(expr, second_at_beginning=True):
            raise InvalidInput(f"cron expression {expr!r} is not understood")
        return cls(expr=expr, timezone=timezone)

    def _iter(self, after: float) -> croniter:
        start = datetime.fromtimestamp(after, zone(self.timezone))
        return croniter(self.expr, start, second_at_beginning=True)

    def next_after(self, after: float) -> int:
        """The first slot strictly after `after`."""
        try:
            return int(self._iter(after).get_next(float))
        except CroniterError:  # e.g. `0 0 30 2 *`: no such day ever comes
            raise InvalidInput(f"cron expression {self.expr!r} never fires") from None

    def matches(self, ts: int) -> bool:
        return self.next_after(ts - 1) == ts

    def slots(self, after: int, upto: int) -> list[int]:
        """Matching whole seconds in `(after, upto]`, oldest first, at most MAX_SLOTS."""
        found: list[int] = []
        cursor = self._iter(after)
        while len(found) < MAX_SLOTS:
            slot = int(cursor.get_next(float))
            if slot > upto:
                break
            found.append(slot)
        return found
