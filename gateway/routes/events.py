"""A Worker's events: cursor pages with long poll, the SSE stream, and stream tickets."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gateway.deps import GatewayDep, RuntimeDep, WorkerIdDep
from gateway.errors import error_responses
from gateway.routes._shared import (
    AFTER,
    LAST_EVENT_ID,
    LIMIT,
    SSE_RESPONSE,
    WAIT_MS,
    long_poll,
    open_stream,
)
from gateway.sse import EventStreamResponse
from shared.api import StreamTicket
from shared.events import EventPage

router = APIRouter(
    prefix="/api/runtimes/{runtime_id}/workers/{worker_id}",
    tags=["events"],
    responses=error_responses(401, 404, 422, 503),
)


@router.get(
    "/events",
    response_model_exclude_none=True,
    responses=error_responses(410),
    operation_id="read_events",
)
async def events(
    request: Request,
    gateway: GatewayDep,
    runtime: RuntimeDep,
    worker_id: WorkerIdDep,
    after: str | None = AFTER,
    limit: int = LIMIT,
    wait_ms: int = WAIT_MS,
) -> EventPage:
    """Events after a cursor; `cursor` is the last one returned (or `after` for an empty page).
    With `wait_ms`, waits up to that long for the first event."""
    return await long_poll(
        request, gateway, runtime, worker_id, after=after, limit=limit, wait_ms=wait_ms
    )


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
