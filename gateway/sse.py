"""One Worker's events as Server-Sent Events, through sse-starlette's `EventSourceResponse`.

Frames: `id:` the cursor, `event:` the type, `data:` the event JSON (without nulls). Heartbeats
are `: ping` comments and never carry an `id:`. A failure while streaming (`cursor_expired`, a
runtime gone unavailable, the Worker gone) is one `error` frame without an `id:`, carrying the
typed error (and `oldest_cursor` for `cursor_expired`), then the stream ends. A client too slow
for its bounded buffer is disconnected; it resumes from its last cursor.

Errors found before the first byte (unknown Worker, malformed or expired cursor, runtime down)
are ordinary typed HTTP errors: the route reads the first page before it answers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Message, Receive, Scope, Send

from gateway.hub import UNAVAILABLE_RETRY_S, Hub, Hubs, Subscription, cursor_position
from gateway.metrics import Metrics
from runtime_worker.runtime import Runtime
from shared.errors import CursorExpired, RuntimeUnavailable, YoiError
from shared.events import ErrorEvent, Event, EventPage
from shared.timeutil import now_s

SEP = "\n"
SLOW_CLIENT_GRACE_S = 0.25
SHUTDOWN_GRACE_S = 2.0


def frame(event: Event) -> ServerSentEvent:
    return ServerSentEvent(
        data=event.model_dump_json(exclude_none=True), event=event.type, id=event.cursor, sep=SEP
    )


def frames(events: Sequence[Event]) -> bytes:
    """A batch of events as one chunk: one send (and one write) per batch, not per event."""
    return "".join(_framed(event) for event in events).encode()


def _framed(event: Event) -> str:
    """`frame(event).encode()` as text, written out: sse-starlette's encoder (a buffer and a
    line split per field) costs more than the JSON. Its parts hold no line break (JSON escapes
    them; a cursor and a type have none); anything else takes the encoder."""
    data = event.model_dump_json(exclude_none=True)
    cursor = event.cursor
    if cursor is None or any(c in part for part in (data, cursor, event.type) for c in "\r\n"):
        return frame(event).encode().decode()
    return f"id: {cursor}{SEP}event: {event.type}{SEP}data: {data}{SEP}{SEP}"


def error_frame(worker_id: str, error: YoiError) -> ServerSentEvent:
    """An `error` event without a cursor: not part of the Worker's log, so no `id:`."""
    event = ErrorEvent(
        worker_id=worker_id,
        ts=now_s(),
        code=error.code,
        message=error.message,
        retryable=error.retryable,
    )
    payload = event.model_dump(mode="json", exclude_none=True, exclude={"cursor"})
    if isinstance(error, CursorExpired):
        payload["oldest_cursor"] = error.oldest_cursor
    return ServerSentEvent(data=json.dumps(payload), event="error", sep=SEP)


def ping() -> ServerSentEvent:
    return ServerSentEvent(comment="ping", sep=SEP)


async def follow(
    runtime: Runtime,
    worker_id: str,
    first: EventPage,
    subscription: Subscription,
    *,
    hubs: Hubs,
    metrics: Metrics,
) -> AsyncIterator[ServerSentEvent | bytes]:
    """Send `first`, join the Worker's hub, catch up to the hub's cursor, then follow the hub."""
    metrics.sse_clients.inc()
    hub: Hub | None = None
    try:
        if first.events:
            yield frames(first.events)
        metrics.saw_events(runtime.runtime_id, first.events)
        last = first.cursor
        hub, head = await hubs.join(runtime, worker_id, subscription)
        while cursor_position(last) < cursor_position(head) and not subscription.closed.is_set():
            try:
                page = await runtime.events(worker_id, after=last, limit=hubs.page_limit)
            except RuntimeUnavailable:
                # Redis went away mid catch-up: as the hub does, keep the stream (its heartbeats
                # go on) and read on from `last` once Redis answers (no gap, no repeat).
                await anyio.sleep(UNAVAILABLE_RETRY_S)
                continue
            if not page.events:
                break
            yield frames(page.events)
            metrics.saw_events(runtime.runtime_id, page.events)
            last = page.cursor
        while True:
            fresh = [
                event
                for event in await subscription.take()
                if cursor_position(event.cursor) > cursor_position(last)
            ]
            if fresh:
                yield frames(fresh)
                last = fresh[-1].cursor
            if subscription.closed.is_set():
                if subscription.failure is not None:
                    yield error_frame(worker_id, subscription.failure)
                return
    except YoiError as exc:
        yield error_frame(worker_id, exc)
    finally:
        metrics.sse_clients.dec()
        if hub is not None:
            hubs.leave(hub, subscription)


class EventStreamResponse(EventSourceResponse):
    """An `EventSourceResponse` that also ends when its subscription closes while a send is
    stuck on a client that stopped reading (after a short grace for a clean end), and that
    ends cleanly (a complete response, not a cut connection) when the server shuts down."""

    def __init__(
        self,
        content: AsyncIterator[ServerSentEvent | bytes],
        subscription: Subscription,
        heartbeat_s: float,
    ) -> None:
        self.shutting_down = anyio.Event()
        super().__init__(
            content,
            ping=heartbeat_s,
            ping_message_factory=ping,
            sep=SEP,
            shutdown_event=self.shutting_down,
            shutdown_grace_period=SHUTDOWN_GRACE_S,
        )
        self.subscription = subscription

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def cut_when_closed() -> None:
                await self.subscription.closed.wait()
                await anyio.sleep(SLOW_CLIENT_GRACE_S)  # a deadline for a clean end, not a settle
                group.cancel_scope.cancel()

            async def end_on_shutdown() -> None:
                await self.shutting_down.wait()
                self.subscription.end()

            group.start_soon(cut_when_closed)
            group.start_soon(end_on_shutdown)
            await super().__call__(scope, receive, send)
            group.cancel_scope.cancel()

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        """The send itself: these streams set no `send_timeout`, and sse-starlette's wrapper
        opens an anyio cancel scope with no deadline around every frame (a backend look-up and
        a scope per send, ~3% of the gateway's CPU under load). A client that stops reading is
        cut by the subscription's bound instead (`cut_when_closed`)."""
        if self.send_timeout is not None:
            await super()._send_with_timeout(send, message)
            return
        await send(message)
