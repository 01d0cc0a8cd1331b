"""`RuntimeSchedules`: a runtime's schedules (`runtime_worker.schedules`) on the `Runtime` API,
and a stop that ends the stopped Worker's schedules.

Apart from the writes so schedules stay one layer: the entries, their checks and their firing
are `Schedules`' (one per runtime), the embedded loop `schedules_embedded`'s.
"""

from __future__ import annotations

import functools

from runtime_worker._runtime_writes import RuntimeWrites
from runtime_worker.schedules import Schedules
from shared.models import WorkerDetail
from shared.schedules import CreateSchedule, Schedule, ScheduleList


class RuntimeSchedules(RuntimeWrites):
    @functools.cached_property
    def schedules(self) -> Schedules:
        return Schedules(self)

    async def create_schedule(self, worker_id: str, request: CreateSchedule) -> Schedule:
        return await self.schedules.create(await self._record(worker_id), request)

    async def list_schedules(self, worker_id: str) -> ScheduleList:
        await self._record(worker_id)
        return await self.schedules.list_for(worker_id)

    async def delete_schedule(self, worker_id: str, schedule_id: str) -> None:
        await self._record(worker_id)
        await self.schedules.delete(worker_id, schedule_id)

    async def stop_worker(self, worker_id: str) -> WorkerDetail:
        """Stop it; its schedules end with it."""
        detail = await super().stop_worker(worker_id)
        await self.schedules.end_for(worker_id)
        return detail
