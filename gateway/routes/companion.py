"""`/api/companion`: the workspace's Companion on `backend-internal`, created on first use."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from gateway.deps import CompanionDep, GatewayDep, RegistryDep
from gateway.errors import error_responses
from gateway.openapi import declare
from gateway.requests import gateway_of, read_query
from gateway.routes._shared import (
    AFTER,
    BEFORE,
    LAST_EVENT_ID,
    SSE_RESPONSE,
    TRANSCRIPT_LIMIT,
    EventsQuery,
    long_poll,
    open_stream,
    send_input,
)
from gateway.sse import EventStreamResponse
from shared.api import CompanionDetail, CompanionMessage, StreamTicket
from shared.events import EventPage
from shared.models import CancelResult, InputAccepted, TranscriptPage

router = APIRouter(
    prefix="/api/companion", tags=["companion"], responses=error_responses(500, 401, 422)
)


@router.get("", operation_id="get_companion")
async def get_companion(gateway: GatewayDep, companion: CompanionDep) -> CompanionDetail:
    """The Companion's WorkerDetail (`display_ref` companion@backend-internal) and workspace."""
    detail = await companion.detail()
    return CompanionDetail(**detail.model_dump(), workspace=gateway.settings.workspace)


@router.get("/transcript", operation_id="get_companion_transcript")
async def transcript(
    registry: RegistryDep,
    companion: CompanionDep,
    limit: int = TRANSCRIPT_LIMIT,
    before: str | None = BEFORE,
) -> TranscriptPage:
    return await registry.embedded.transcript(await companion.id(), limit=limit, before=before)


@router.post(
    "/messages",
    status_code=202,
    responses=error_responses(409, 413),
    operation_id="send_companion_message",
)
async def post_message(
    gateway: GatewayDep, registry: RegistryDep, companion: CompanionDep, body: CompanionMessage
) -> InputAccepted:
    """Send the Companion a message; busy (strategy `reject`, its default): 409 `worker_busy`."""
    return await send_input(gateway, registry.embedded, await companion.id(), body)


@router.post("/cancel", operation_id="cancel_companion_run")
async def cancel(registry: RegistryDep, companion: CompanionDep) -> CancelResult:
    return await registry.embedded.cancel(await companion.id())


@router.get(
    "/events",
    response_model=EventPage,
    responses=error_responses(410),
    operation_id="read_companion_events",
    openapi_extra=declare(query=EventsQuery),
)
async def events(request: Request, registry: RegistryDep, companion: CompanionDep) -> Response:
    query = read_query(request, EventsQuery)
    worker_id = await companion.id()
    return await long_poll(request, gateway_of(request), registry.embedded, worker_id, query)


@router.get(
    "/events/stream",
    response_class=EventStreamResponse,
    status_code=200,
    responses={**SSE_RESPONSE, **error_responses(410)},
    operation_id="stream_companion_events",
)
async def stream(
    gateway: GatewayDep,
    registry: RegistryDep,
    companion: CompanionDep,
    after: str | None = AFTER,
    last_event_id: str | None = LAST_EVENT_ID,
) -> EventStreamResponse:
    """Server-Sent Events of the Companion; resumes from `Last-Event-ID` (else `after`)."""
    worker_id = await companion.id()
    return await open_stream(gateway, registry.embedded, worker_id, after, last_event_id)


@router.post("/stream-ticket", operation_id="create_companion_stream_ticket")
async def stream_ticket(gateway: GatewayDep, companion: CompanionDep) -> StreamTicket:
    """A ticket for the Companion's event stream (`?ticket=`), valid `expires_in` seconds."""
    worker_id = await companion.id()
    runtime_id = gateway.runtimes().embedded.runtime_id
    return StreamTicket(
        ticket=gateway.tickets.issue(runtime_id, worker_id),
        expires_in=gateway.tickets.ttl_s,
        runtime_id=runtime_id,
        worker_id=worker_id,
    )
