"""A runtime's schedules: inputs sent to a Worker once at a time (`at`) or on every slot of a
cron expression (`cron`), the same on the embedded and the fleet runtime.

Entries live in the runtime's store (`ScheduleStore`: Redis hashes, or memory and the SQLite
file), beside the newest slot each one fired. Firing is `fire_due(now)`: every slot that came
since the last one fired is sent as an ordinary input whose `input_id` derives from the schedule
and the slot (`at-<id>-<slot>`, `cron-<id>-<slot>`), so two firings of one slot (two fleet
members racing, a retried job) are one input: the Worker's dedupe answers the second. Who calls
it: the embedded runtime's loop (`schedules_embedded`), on a fleet arq's housekeeping cron and,
for an `at`, a job arq defers to that time (`runtime_worker.schedule`).

A schedule ends when its Worker does: on stop (`end_for`), and at its next firing when the Worker
is gone or stopped. A one-shot ends when it fired. A slot missed for longer than `LOOKBACK_S`
(the runtime was down) is skipped. `clock` is the time every decision reads, so tests drive it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import AwareDatetime, BaseModel, Field, ValidationError

from runtime_worker.cronspec import CronSpec
from shared.errors import (
    InvalidInput,
    PayloadTooLarge,
    RuntimeUnavailable,
    ScheduleNotFound,
    WorkerNotFound,
    WorkerStopped,
    YoiError,
)
from shared.ids import new_id
from shared.models import LIVE_STATES, RuntimeKind, SendInput, Strategy
from shared.schedules import CreateSchedule, Schedule, ScheduleList
from shared.timeutil import now_s

if TYPE_CHECKING:
    from runtime_worker._runtime_writes import RuntimeWrites
    from runtime_worker.store.base import WorkerRecord

log = logging.getLogger("yoi.schedules")

LOOKBACK_S = 300  # slots missed longer ago than this (the runtime was down) are skipped
DAY_S = 86_400


class ScheduleEntry(BaseModel):
    """A schedule as stored (JSON): a cron expression and its timezone, or a one-shot `at`."""

    v: int = 1
    worker_id: str
    text: str = Field(min_length=1)
    cron: str | None = None
    timezone: str = "UTC"
    at: AwareDatetime | None = None
    created_s: float

    def spec(self) -> CronSpec:
        assert self.cron is not None
        return CronSpec.parse(self.cron, self.timezone)

    def input_id(self, schedule_id: str, slot: int) -> str:
        return f"{'at' if self.at is not None else 'cron'}-{schedule_id}-{slot}"

    def next_fire(self, fired: int | None, now: float) -> float:
        """When it fires next: its `at`, or the first slot after now and after the last fired."""
        if self.at is not None:
            return self.at.timestamp()
        return float(self.spec().next_after(max(int(now), fired or 0)))


def _five_fields(expr: str) -> str:
    """The API's cron: five fields or an alias (the six-field seconds form stays internal)."""
    expr = " ".join(expr.split())
    if not (len(expr.split()) == 5 or (expr.startswith("@") and " " not in expr)):
        raise InvalidInput("cron: five fields (minute hour day month weekday) or an @alias")
    return expr


class Schedules:
    """The schedules of one `Runtime`; `changed` is set whenever one is added (a loop waits)."""

    def __init__(self, runtime: RuntimeWrites, clock: Callable[[], float] = now_s) -> None:
        self.runtime = runtime
        self.clock = clock
        self.changed = asyncio.Event()

    def poke(self) -> None:
        """Have a loop waiting on `changed` look again now (a schedule added, the clock moved)."""
        self.changed.set()

    # -- the API ---------------------------------------------------------------------------------

    async def create(self, record: WorkerRecord, body: CreateSchedule) -> Schedule:
        """Check everything, then store; bad input is a typed error and stores nothing."""
        worker_id = record.worker_id
        settings = self.runtime.settings
        if not body.text.strip():
            raise InvalidInput("text: the text is empty")
        if len(body.text) > settings.max_input_chars:
            raise PayloadTooLarge(f"the text is longer than {settings.max_input_chars} characters")
        now = self.clock()
        entry = ScheduleEntry(worker_id=worker_id, text=body.text, at=body.at, created_s=now)
        if body.at is not None:
            at_s = body.at.timestamp()
            if at_s <= now:
                raise InvalidInput("at: the time is in the past")
            if at_s > now + settings.schedule_max_ahead_days * DAY_S:
                raise InvalidInput(f"at: more than {settings.schedule_max_ahead_days} days ahead")
        else:
            assert body.cron is not None
            entry.cron = _five_fields(body.cron)
            entry.timezone = body.timezone or "UTC"
            entry.spec().next_after(now)  # a bad timezone, expression, or one never firing
        if record.state not in LIVE_STATES:
            raise WorkerStopped(f"worker {worker_id} is {record.state.value}")
        entries, _ = await self._entries()
        if sum(e.worker_id == worker_id for e in entries.values()) >= (
            settings.max_schedules_per_worker
        ):
            raise InvalidInput(
                f"worker {worker_id} has {settings.max_schedules_per_worker} schedules already"
            )
        schedule_id = new_id()
        await self.put(schedule_id, entry)
        return self._wire(schedule_id, entry, None, now)

    async def put(self, schedule_id: str, entry: ScheduleEntry) -> None:
        """Store an entry (checked by the caller); a fleet's `at` also gets its arq job."""
        await self.runtime.store.put_schedule(schedule_id, entry.model_dump_json())
        if self.runtime.kind is RuntimeKind.FLEET:
            from runtime_worker import schedule  # arq's side; it imports the Runtime

            try:
                await schedule.arm(self.runtime, schedule_id, entry)
            except BaseException:
                await self.runtime.store.remove_schedule(schedule_id)
                raise
        self.poke()

    async def list_for(self, worker_id: str) -> ScheduleList:
        entries, marks = await self._entries()
        now = self.clock()
        mine = sorted(
            (e.created_s, sid, e) for sid, e in entries.items() if e.worker_id == worker_id
        )
        return ScheduleList(
            schedules=[self._wire(sid, e, _mark(marks, sid), now) for _, sid, e in mine]
        )

    async def delete(self, worker_id: str, schedule_id: str) -> None:
        entries, _ = await self._entries()
        entry = entries.get(schedule_id)
        if entry is None or entry.worker_id != worker_id:
            raise ScheduleNotFound(f"no schedule {schedule_id} on worker {worker_id}")
        await self.runtime.store.remove_schedule(schedule_id)

    async def end_for(self, worker_id: str) -> int:
        """Remove a (stopped) Worker's schedules; how many."""
        entries, _ = await self._entries()
        ended = [sid for sid, e in entries.items() if e.worker_id == worker_id]
        for schedule_id in ended:
            await self.runtime.store.remove_schedule(schedule_id)
        return len(ended)

    # -- firing ----------------------------------------------------------------------------------

    async def fire_due(self, now: float, *, only: str | None = None) -> int:
        """Send every slot due at `now` (unix seconds) since its schedule last fired (only the
        schedule `only`, when given); returns how many inputs were sent. Safe to run twice or
        concurrently: a slot is one `input_id`."""
        entries, marks = await self._entries()
        sent = 0
        for schedule_id, entry in entries.items():
            if only is not None and schedule_id != only:
                continue
            try:
                sent += await self._fire(schedule_id, entry, _mark(marks, schedule_id), now)
            except (WorkerNotFound, WorkerStopped):
                log.info("schedule %s ended: its worker is gone", schedule_id)
                await self.runtime.store.remove_schedule(schedule_id)
            except RuntimeUnavailable:
                raise
            except YoiError as exc:  # e.g. 429 `rate_limited`: the slot is tried at the next tick
                log.warning("schedule %s did not fire: %s", schedule_id, exc.code)
        return sent

    async def _fire(
        self, schedule_id: str, entry: ScheduleEntry, fired: int | None, now: float
    ) -> int:
        store = self.runtime.store
        if entry.at is not None:
            at_s = entry.at.timestamp()
            if at_s > now:
                return 0
            if at_s < now - LOOKBACK_S:
                log.warning("schedule %s missed its time: skipped", schedule_id)
                await store.remove_schedule(schedule_id)
                return 0
            await self._send(entry, entry.input_id(schedule_id, int(at_s)))
            await store.remove_schedule(schedule_id)  # a one-shot ends once it fired
            return 1
        sent = 0
        after = max(fired or int(entry.created_s), int(now) - LOOKBACK_S)
        for slot in entry.spec().slots(after, int(now)):
            await self._send(entry, entry.input_id(schedule_id, slot))
            await store.mark_schedule(schedule_id, slot)
            sent += 1
        return sent

    async def _send(self, entry: ScheduleEntry, input_id: str) -> None:
        request = SendInput(text=entry.text, input_id=input_id, strategy=Strategy.ENQUEUE)
        await self.runtime.send_input(entry.worker_id, request)

    async def seconds_to_next(self, bound_s: float) -> float:
        """How long until the earliest schedule is due (at most `bound_s`, at least 0)."""
        entries, marks = await self._entries()
        now = self.clock()
        wait = bound_s
        for schedule_id, entry in entries.items():
            try:
                due = entry.next_fire(_mark(marks, schedule_id), now)
            except InvalidInput:
                continue
            wait = min(wait, due - now)
        return max(0.0, wait)

    # -- reading ---------------------------------------------------------------------------------

    async def _entries(self) -> tuple[dict[str, ScheduleEntry], dict[str, str]]:
        raw, marks = await self.runtime.store.schedules()
        entries: dict[str, ScheduleEntry] = {}
        for schedule_id, value in raw.items():
            try:
                entries[schedule_id] = ScheduleEntry.model_validate_json(value)
            except ValidationError:
                log.warning("schedule %s is unreadable: skipped", schedule_id)
        return entries, marks

    def _wire(
        self, schedule_id: str, entry: ScheduleEntry, fired: int | None, now: float
    ) -> Schedule:
        return Schedule(
            schedule_id=schedule_id,
            worker_id=entry.worker_id,
            text=entry.text,
            at=entry.at,
            cron=entry.cron,
            timezone=entry.timezone if entry.cron is not None else None,
            created_at=entry.created_s,
            next_fire_at=entry.next_fire(fired, now),
        )


def _mark(marks: dict[str, str], schedule_id: str) -> int | None:
    raw = marks.get(schedule_id)
    return int(raw) if raw is not None else None


__all__ = ["LOOKBACK_S", "ScheduleEntry", "Schedules"]
