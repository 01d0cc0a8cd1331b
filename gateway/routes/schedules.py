"""Schedules: `…/workers/{worker_id}/schedules` (an input sent `at` a time or on a `cron`), the
same on every runtime (`Runtime.create_schedule`, …): the gateway never touches their storage."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from gateway.deps import RuntimeDep, WorkerIdDep
from gateway.errors import error_responses
from gateway.openapi import declare
from gateway.requests import (
    checked_worker_id,
    gateway_of,
    json_response,
    read_json,
    request_route,
    runtime_of,
)
from shared.schedules import CreateSchedule, Schedule, ScheduleList

SCHEDULES = "/api/runtimes/{runtime_id}/workers/{worker_id}/schedules"

router = APIRouter(tags=["schedules"], responses=error_responses(500, 401, 404, 422, 503))


@request_route(
    router,
    SCHEDULES,
    "POST",
    status_code=201,
    response_model=Schedule,
    responses=error_responses(409, 413, 501),
    operation_id="create_schedule",
    openapi_extra=declare("runtime_id", "worker_id", body=CreateSchedule),
)
async def create_schedule(request: Request) -> Response:
    """Exactly one of `at` (an ISO 8601 time with its offset, ahead and within
    `YOI_SCHEDULE_MAX_AHEAD_DAYS`) and `cron` (five fields or an `@alias`, read in `timezone`).
    Each firing is an ordinary input (`input_id` `at-<schedule_id>-<slot>` or
    `cron-<schedule_id>-<slot>`); a stopped Worker's schedules end. 409 `worker_stopped`."""
    runtime = runtime_of(gateway_of(request), request.path_params["runtime_id"])
    worker_id = checked_worker_id(request.path_params["worker_id"])
    body = await read_json(request, CreateSchedule)
    return json_response(await runtime.create_schedule(worker_id, body), 201)


@router.get(SCHEDULES, operation_id="list_schedules")
async def list_schedules(runtime: RuntimeDep, worker_id: WorkerIdDep) -> ScheduleList:
    """The Worker's schedules, oldest first, each with `next_fire_at`."""
    return await runtime.list_schedules(worker_id)


@router.delete(SCHEDULES + "/{schedule_id}", status_code=204, operation_id="delete_schedule")
async def delete_schedule(
    runtime: RuntimeDep,
    worker_id: WorkerIdDep,
    schedule_id: str,
) -> Response:
    """No further firing; 404 `schedule_not_found` when the Worker has no such schedule."""
    await runtime.delete_schedule(worker_id, schedule_id)
    return Response(status_code=204)
