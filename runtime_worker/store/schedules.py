"""Where a runtime keeps its schedules: every store has them (`ScheduleStore`), so the embedded
runtime schedules as a fleet does. An entry is opaque JSON here (its model is
`runtime_worker.schedules.ScheduleEntry`); beside it, the newest slot each schedule fired.
Redis keeps them in two hashes (`_redis_schedules`), memory in two dicts (`MemorySchedules`),
which the SQLite store writes to its file after every step like the rest of its state."""

from __future__ import annotations

from abc import ABC, abstractmethod


class ScheduleStore(ABC):
    @abstractmethod
    async def put_schedule(self, schedule_id: str, entry_json: str) -> None: ...

    @abstractmethod
    async def remove_schedule(self, schedule_id: str) -> bool:
        """Drop a schedule and the slot it fired last; whether there was one."""

    @abstractmethod
    async def schedules(self) -> tuple[dict[str, str], dict[str, str]]:
        """Every schedule (id → JSON entry) and the slot each fired last (id → unix seconds)."""

    @abstractmethod
    async def mark_schedule(self, schedule_id: str, slot: int) -> None: ...


class MemorySchedules(ScheduleStore):
    """The memory store's schedules (a mixin: `MemoryStore` makes the dicts)."""

    _schedules: dict[str, str]
    _schedule_marks: dict[str, str]
    schedules_version = 0
    """Counts changes, so the SQLite store writes its schedules only after a step changed them."""

    async def put_schedule(self, schedule_id: str, entry_json: str) -> None:
        self._schedules[schedule_id] = entry_json
        self.schedules_version += 1

    async def remove_schedule(self, schedule_id: str) -> bool:
        self._schedule_marks.pop(schedule_id, None)
        self.schedules_version += 1
        return self._schedules.pop(schedule_id, None) is not None

    async def schedules(self) -> tuple[dict[str, str], dict[str, str]]:
        return dict(self._schedules), dict(self._schedule_marks)

    async def mark_schedule(self, schedule_id: str, slot: int) -> None:
        if schedule_id in self._schedules:  # a mark without its schedule is never kept
            self._schedule_marks[schedule_id] = str(slot)
            self.schedules_version += 1
