"""What the Worker routes and the Companion routes do alike: inputs, long polls, streams."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from fastapi import Header, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from gateway.errors import ClientGone
from gateway.requests import json_response
from gateway.sse import EventStreamResponse, follow
from gateway.state import Gateway
from runtime_worker.runtime import MAX_PAGE, MAX_WAIT_MS, Runtime
from shared import tracing
from shared.aio import cancel_and_wait
from shared.errors import YoiError
from shared.ids import CURSOR_FORM, CURSOR_PATTERN
from shared.models import InputAccepted, SendInput

T = TypeVar("T")

AFTER_PATTERN = f"^(now|{CURSOR_FORM})$"
RESUME_PATTERN = f"^({CURSOR_FORM})?$"  # a browser may send an empty Last-Event-ID
MAX_CURSOR_CHARS = 64
AFTER_DESCRIPTION = "A cursor, or `now`; omitted: the oldest retained."

AFTER = Query(
    None, max_length=MAX_CURSOR_CHARS, pattern=AFTER_PATTERN, description=AFTER_DESCRIPTION
)
BEFORE = Query(
    None, max_length=MAX_CURSOR_CHARS, pattern=CURSOR_PATTERN, description="An entry's cursor."
)
TRANSCRIPT_LIMIT = Query(50, ge=1, le=MAX_PAGE)


class EventsQuery(BaseModel):
    """The events long poll's query, validated in one step (`gateway.requests.read_query`)."""

    after: str | None = Field(
        None, max_length=MAX_CURSOR_CHARS, pattern=AFTER_PATTERN, description=AFTER_DESCRIPTION
    )
    limit: int = Field(100, ge=1, le=MAX_PAGE)
    wait_ms: int = Field(
        0, ge=0, le=MAX_WAIT_MS, description="Wait up to this long for a first event."
    )


LAST_EVENT_ID = Header(
    None,
    alias="Last-Event-ID",
    max_length=64,
    pattern=RESUME_PATTERN,
    description="Resume after this cursor (what a browser's `EventSource` sends); wins over "
    "`after`.",
)
SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/event-stream": {}},
        "description": "Server-Sent Events: `id:` the cursor, `event:` the type, `data:` the "
        "event JSON; `: ping` heartbeats; an `error` frame (no `id:`) ends a failed stream.",
    }
}


async def send_input(
    gateway: Gateway, runtime: Runtime, worker_id: str, body: SendInput
) -> InputAccepted:
    request = {"yoi.runtime_id": runtime.runtime_id, "yoi.worker_id": worker_id}
    try:
        with tracing.span("yoi.send_input", kind="server", attributes=request):
            accepted = await runtime.send_input(worker_id, body)
    except YoiError as exc:
        gateway.metrics.input_rejected(runtime.runtime_id, exc.code)
        raise
    gateway.metrics.input_accepted(runtime.runtime_id, worker_id, accepted.input_id)
    return accepted


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def until_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it at once if the client disconnects (a long poll may hold a
    store read for a minute; a client that left must not keep it)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait(task, watcher)
    if task.cancelled():
        raise ClientGone
    return task.result()


async def long_poll(
    request: Request, gateway: Gateway, runtime: Runtime, worker_id: str, query: EventsQuery
) -> Response:
    """The page written once, as the route declares it (`null` fields left out)."""
    limit = query.limit
    page = await runtime.events(worker_id, after=query.after, limit=limit)
    if not page.events and query.wait_ms > 0:
        # Nothing yet: wait, from the cursor just read (checked, so the wait need not check
        # it again), and only now watch for the client leaving.
        work = runtime.tail(worker_id, after=page.cursor, limit=limit, wait_ms=query.wait_ms)
        page = await until_disconnected(request, work)
    gateway.metrics.saw_events(runtime.runtime_id, page.events)
    return json_response(page, exclude_none=True)


async def open_stream(
    gateway: Gateway, runtime: Runtime, worker_id: str, after: str | None, last_event_id: str | None
) -> EventStreamResponse:
    """`Last-Event-ID` (a browser's automatic resume) wins over `?after=` (the first connect)."""
    resume_from = last_event_id or after or None
    hubs = gateway.hubs
    first = await runtime.events(worker_id, after=resume_from, limit=hubs.page_limit)
    subscription = hubs.subscription()
    stream = follow(runtime, worker_id, first, subscription, hubs=hubs, metrics=gateway.metrics)
    return EventStreamResponse(stream, subscription, gateway.settings.sse_heartbeat_s)
