"""Cron expressions of recurring inputs, evaluated in UTC.

Five fields (`minute hour day month weekday`, as crontab) or six with `second` first, so tests
and short schedules can fire every few seconds. Each field takes `*`, `n`, `a-b`, `*/s`, `a-b/s`
and comma lists; weekday 0 and 7 are Sunday. As in crontab, when both day and weekday are
restricted a time matches either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from shared.errors import InvalidInput

_BOUNDS = {
    "second": (0, 59),
    "minute": (0, 59),
    "hour": (0, 23),
    "day": (1, 31),
    "month": (1, 12),
    "weekday": (0, 7),
}
MAX_SLOTS = 1000


def _field(text: str, name: str) -> frozenset[int]:
    low, high = _BOUNDS[name]
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if body == "*":
                start, end = low, high
            elif "-" in body:
                first, last = body.split("-", 1)
                start, end = int(first), int(last)
            else:
                start = int(body)
                end = high if step_text else start
        except ValueError:
            raise InvalidInput(f"cron {name} field {text!r} is not understood") from None
        if step < 1 or not low <= start <= end <= high:
            raise InvalidInput(f"cron {name} field {text!r} is out of range {low}-{high}")
        values.update(range(start, end + 1, step))
    if name == "weekday" and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


@dataclass(frozen=True)
class CronSpec:
    expr: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, expr: str) -> CronSpec:
        parts = expr.split()
        if len(parts) == 5:
            parts = ["0", *parts]
        if len(parts) != 6:
            raise InvalidInput("a cron expression has 5 fields (or 6, seconds first)")
        second, minute, hour, day, month, weekday = parts
        return cls(
            expr=" ".join(expr.split()),
            seconds=_field(second, "second"),
            minutes=_field(minute, "minute"),
            hours=_field(hour, "hour"),
            days=_field(day, "day"),
            months=_field(month, "month"),
            weekdays=_field(weekday, "weekday"),
            any_day=day == "*",
            any_weekday=weekday == "*",
        )

    @property
    def step_s(self) -> int:
        """The finest granularity: 1 s with a seconds field, else whole minutes."""
        return 60 if self.seconds == frozenset({0}) else 1

    def matches(self, ts: int) -> bool:
        at = datetime.fromtimestamp(ts, UTC)
        if (
            at.second not in self.seconds
            or at.minute not in self.minutes
            or at.hour not in self.hours
            or at.month not in self.months
        ):
            return False
        day_ok = at.day in self.days
        weekday_ok = (at.weekday() + 1) % 7 in self.weekdays
        if self.any_day or self.any_weekday:
            return day_ok and weekday_ok
        return day_ok or weekday_ok

    def slots(self, after: int, upto: int) -> list[int]:
        """Matching whole seconds in `(after, upto]`, oldest first, at most MAX_SLOTS."""
        step = self.step_s
        first = (after // step + 1) * step
        found: list[int] = []
        for ts in range(first, upto + 1, step):
            if self.matches(ts):
                found.append(ts)
                if len(found) >= MAX_SLOTS:
                    break
        return found
