"""A Worker's events: cursor pages with long poll, the SSE stream, and stream tickets."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from gateway.deps import GatewayDep, RuntimeDep, WorkerIdDep
from gateway.errors import error_responses
from gateway.openapi import declare
from gateway.requests import (
    checked_worker_id,
    gateway_of,
    read_query,
    request_route,
    runtime_of,
)
from gateway.routes._shared import (
    AFTER,
    LAST_EVENT_ID,
    SSE_RESPONSE,
    EventsQuery,
    long_poll,
    open_stream,
)
from gateway.sse import EventStreamResponse
from shared.api import StreamTicket
from shared.events import EventPage

router = APIRouter(
    prefix="/api/runtimes/{runtime_id}/workers/{worker_id}",
    tags=["events"],
    responses=error_responses(500, 401, 404, 422, 503),
)


@request_route(
    router,
    "/events",
    "GET",
    response_model=EventPage,
    responses=error_responses(410),
    operation_id="read_events",
    openapi_extra=declare("runtime_id", "worker_id", query=EventsQuery),
)
async def events(request: Request) -> Response:
    """Events after a cursor; `cursor` is the last one returned (or `after` for an empty page).
    With `wait_ms`, waits up to that long for the first event."""
    gateway = gateway_of(request)
    runtime = runtime_of(gateway, request.path_params["runtime_id"])
    worker_id = checked_worker_id(request.path_params["worker_id"])
    query = read_query(request, EventsQuery)
    return await long_poll(request, gateway, runtime, worker_id, query)


@router.get(
    "/events/stream",
    response_class=EventStreamResponse,
    status_code=200,
    responses={**SSE_RESPONSE, **error_responses(410)},
    operation_id="stream_events",
)
async def stream(
    gateway: GatewayDep,
    runtime: RuntimeDep,
    worker_id: WorkerIdDep,
    after: str | None = AFTER,
    last_event_id: str | None = LAST_EVENT_ID,
) -> EventStreamResponse:
    """Server-Sent Events; resumes from `Last-Event-ID` (else `after`)."""
    return await open_stream(gateway, runtime, worker_id, after, last_event_id)


@router.post("/stream-ticket", operation_id="create_stream_ticket")
async def stream_ticket(
    gateway: GatewayDep, runtime: RuntimeDep, worker_id: WorkerIdDep
) -> StreamTicket:
    """A ticket for this Worker's event stream only (`?ticket=`), valid `expires_in` seconds:
    what a browser's `EventSource` can use, since the token must never go into a URL."""
    await runtime.get_worker(worker_id)
    return StreamTicket(
        ticket=gateway.tickets.issue(runtime.runtime_id, worker_id),
        expires_in=gateway.tickets.ttl_s,
        runtime_id=runtime.runtime_id,
        worker_id=worker_id,
    )
