"""`PATCH …/workers/{worker_id}`: change a Worker after creation (its webhook URL)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

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
from shared.models import WorkerDetail
from shared.webhooks import UpdateWorker

router = APIRouter(tags=["workers"], responses=error_responses(500, 401, 422))
WORKER = "/api/runtimes/{runtime_id}/workers/{worker_id}"


@request_route(
    router,
    WORKER,
    "PATCH",
    response_model=WorkerDetail,
    responses=error_responses(404, 503),
    operation_id="update_worker",
    openapi_extra=declare("runtime_id", "worker_id", body=UpdateWorker),
)
async def update_worker(request: Request) -> Response:
    """Set `webhook_url` (null removes it). A URL this runtime may not post to (not http(s),
    a user or password in it, a host off `YOI_WEBHOOK_ALLOWED_HOSTS`, or no allow-list at all)
    is 422 `invalid_input` and changes nothing."""
    runtime = runtime_of(gateway_of(request), request.path_params["runtime_id"])
    worker_id = checked_worker_id(request.path_params["worker_id"])
    body = await read_json(request, UpdateWorker)
    return json_response(await runtime.update_worker(worker_id, body))
