"""Workers: `/api/runtimes/{runtime_id}/workers/...` and `/api/workers` across runtimes."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from starlette.responses import Response

from gateway.deps import RegistryDep, RuntimeDep, WorkerIdDep
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
from gateway.routes._shared import BEFORE, TRANSCRIPT_LIMIT, send_input, until_disconnected
from runtime_worker.runtime import Runtime
from shared.api import AllWorkers, WorkerList
from shared.errors import RuntimeUnavailable
from shared.models import (
    CancelResult,
    CreatedWorkers,
    CreateWorker,
    CreateWorkers,
    InputAccepted,
    InputRequest,
    RunDetail,
    TranscriptPage,
    WorkerDetail,
    WorkerSummary,
)

router = APIRouter(tags=["workers"], responses=error_responses(500, 401, 422))
WORKERS = "/api/runtimes/{runtime_id}/workers"
WORKER = WORKERS + "/{worker_id}"


@router.get("/api/workers", responses=error_responses(503), operation_id="list_all_workers")
async def list_all_workers(registry: RegistryDep) -> AllWorkers:
    """Every Worker of every runtime; a runtime that does not answer is named in `unavailable`."""

    async def one(runtime: Runtime) -> list[WorkerSummary] | None:
        try:
            return await runtime.list_workers()
        except RuntimeUnavailable:
            return None

    runtimes = registry.all()
    answers = await asyncio.gather(*(one(runtime) for runtime in runtimes))
    listing = AllWorkers(workers=[])
    for runtime, workers in zip(runtimes, answers, strict=True):
        if workers is None:
            listing.unavailable.append(runtime.runtime_id)
        else:
            listing.workers.extend(workers)
    return listing


@router.get(WORKERS, responses=error_responses(404, 503), operation_id="list_workers")
async def list_workers(runtime: RuntimeDep) -> WorkerList:
    return WorkerList(workers=await runtime.list_workers())


@request_route(
    router,
    WORKERS,
    "POST",
    status_code=201,
    response_model=WorkerDetail,
    responses=error_responses(404, 409, 413, 503),
    operation_id="create_worker",
    openapi_extra=declare("runtime_id", body=CreateWorker),
)
async def create_worker(request: Request) -> Response:
    """`scope_conflict` (409) when a write scope overlaps a live Worker's."""
    runtime = runtime_of(gateway_of(request), request.path_params["runtime_id"])
    body = await read_json(request, CreateWorker)
    return json_response(await runtime.create_worker(body), 201)


@request_route(
    router,
    WORKERS + ":batch",
    "POST",
    status_code=201,
    response_model=CreatedWorkers,
    responses=error_responses(404, 409, 413, 503),
    operation_id="create_workers",
    openapi_extra=declare("runtime_id", body=CreateWorkers),
)
async def create_workers(request: Request) -> Response:
    """Up to 1,000 Workers in one request, their details in the order asked. The whole batch
    is judged first: a bad item is 422 naming it (`body.workers.3…`, `workers.3: …`), a write
    scope overlapping another item's or a live Worker's is 409 `scope_conflict`, no room for
    all of them is 503 `capacity_exhausted`; then nothing was created. A 503 while writing
    may leave some made."""
    runtime = runtime_of(gateway_of(request), request.path_params["runtime_id"])
    body = await read_json(request, CreateWorkers)
    created = await runtime.create_workers(body.workers)
    return json_response(CreatedWorkers(workers=created), 201)


@router.get(WORKER, responses=error_responses(404, 503), operation_id="get_worker")
async def get_worker(runtime: RuntimeDep, worker_id: WorkerIdDep) -> WorkerDetail:
    return await runtime.get_worker(worker_id)


@request_route(
    router,
    WORKER + "/inputs",
    "POST",
    status_code=202,
    response_model=InputAccepted,
    responses={
        200: {"model": RunDetail, "description": "With `wait_s`: the run, ended in time."},
        **error_responses(404, 409, 413, 503),
    },
    operation_id="send_input",
    openapi_extra=declare("runtime_id", "worker_id", body=InputRequest),
)
async def post_input(request: Request) -> Response:
    """Accept an input; `after=cursor` on the events follows its run. The same `input_id` again
    answers the same body and starts nothing. Busy with strategy `reject`: 409 `worker_busy`.
    With `wait_s`: 200 with the finished run (as `GET …/runs/{run_id}`) when it ends in time,
    else this 202."""
    gateway = gateway_of(request)
    runtime = runtime_of(gateway, request.path_params["runtime_id"])
    worker_id = checked_worker_id(request.path_params["worker_id"])
    body = await read_json(request, InputRequest)
    accepted = await send_input(gateway, runtime, worker_id, body)
    if body.wait_s:
        run = await until_disconnected(request, runtime.wait_run(worker_id, accepted, body.wait_s))
        if run is not None:
            return json_response(run)
    return json_response(accepted, 202)


@router.post(WORKER + "/cancel", responses=error_responses(404, 503), operation_id="cancel_run")
async def cancel(runtime: RuntimeDep, worker_id: WorkerIdDep) -> CancelResult:
    """Cancel the current run; idempotent (`cancelled: false` when nothing ran)."""
    return await runtime.cancel(worker_id)


@router.post(WORKER + "/stop", responses=error_responses(404, 503), operation_id="stop_worker")
async def stop(runtime: RuntimeDep, worker_id: WorkerIdDep) -> WorkerDetail:
    return await runtime.stop_worker(worker_id)


@router.get(
    WORKER + "/transcript", responses=error_responses(404, 503), operation_id="get_transcript"
)
async def transcript(
    runtime: RuntimeDep,
    worker_id: WorkerIdDep,
    limit: int = TRANSCRIPT_LIMIT,
    before: str | None = BEFORE,
) -> TranscriptPage:
    return await runtime.transcript(worker_id, limit=limit, before=before)
