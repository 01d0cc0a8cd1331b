"""`stream: true`: a run's events as chat completion chunks over Server-Sent Events.

The first chunk carries `delta.role`, then one chunk per text delta, a last chunk with an empty
delta and `finish_reason`, the usage chunk (empty `choices`) when
`stream_options.include_usage` asks, and `data: [DONE]`. Heartbeats are SSE comments, which the
clients skip. An error after the 200 went out is a `data: {"error": ...}` chunk in OpenAI's
shape (the official clients raise it), then `[DONE]`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

from gateway.openai.completions import HostLost, Run, completion_id
from shared.errors import YoiError
from shared.openai import (
    ChatCompletionChunk,
    ChunkChoice,
    Delta,
    FinishReason,
    OpenAIError,
    OpenAIErrorBody,
)

DONE = "[DONE]"
SEP = "\n"


def _data(payload: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(payload, separators=(",", ":")), sep=SEP)


class Chunks:
    """Builds the chunks of one completion; every chunk shares the id, `created` and `model`."""

    def __init__(self, run: Run, model: str, include_usage: bool) -> None:
        self.run = run
        self.model = model
        self.include_usage = include_usage

    def chunk(self, delta: Delta, finish_reason: FinishReason | None = None) -> ServerSentEvent:
        chunk = ChatCompletionChunk(
            id=completion_id(self.run.accepted.input_id),
            created=self.run.created,
            model=self.model,
            choices=[ChunkChoice(delta=delta, finish_reason=finish_reason)],
        )
        payload = chunk.model_dump(mode="json")
        # OpenAI's deltas carry only what they set (`{}` in the last one).
        payload["choices"][0]["delta"] = delta.model_dump(mode="json", exclude_none=True)
        if not self.include_usage:
            del payload["usage"]
        return _data(payload)

    def usage(self) -> ServerSentEvent:
        chunk = ChatCompletionChunk(
            id=completion_id(self.run.accepted.input_id),
            created=self.run.created,
            model=self.model,
            choices=[],
            usage=self.run.usage,
        )
        return _data(chunk.model_dump(mode="json"))


def error_chunk(error: YoiError) -> ServerSentEvent:
    body = OpenAIErrorBody(message=error.message, type="server_error", code=error.code)
    return _data(OpenAIError(error=body).payload())


async def chunks(run: Run, model: str, include_usage: bool) -> AsyncIterator[ServerSentEvent]:
    """The stream's frames; the run is released (cancelled if unfinished) however it ends."""
    build = Chunks(run, model, include_usage)
    sent_text = False
    rerun_goes_on = False
    try:
        yield build.chunk(Delta(role="assistant", content=""))
        async for event in run.events():
            if event.type == "run_started" and event.attempt > 1 and sent_text:
                rerun_goes_on = True  # its answer lands in the transcript: let it finish
                raise HostLost(
                    "the answer restarted on another runtime process after its host was lost; "
                    "the text streamed so far is void (the Worker's transcript has the answer)"
                )
            if event.type == "text_delta" and event.text:
                sent_text = True
                yield build.chunk(Delta(content=event.text))
        error = run.outcome_error()
        if error is not None:
            raise error
        yield build.chunk(Delta(), finish_reason="stop")
        if include_usage:
            yield build.usage()
    except YoiError as exc:
        yield error_chunk(exc)
    finally:
        await run.release(cancel=not rerun_goes_on)
    yield ServerSentEvent(data=DONE, sep=SEP)


class ChunkStreamResponse(EventSourceResponse):
    """Releases the run even when the client left before the first chunk was made (the
    generator's own `finally` never runs then)."""

    def __init__(
        self, run: Run, model: str, include_usage: bool, heartbeat_s: float, headers: dict[str, str]
    ) -> None:
        content = chunks(run, model, include_usage)
        super().__init__(content, ping=heartbeat_s, sep=SEP, headers=headers)
        self.run = run

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.run.release()  # a no-op when the stream released it already


def stream_response(
    run: Run, model: str, include_usage: bool, heartbeat_s: float, *, headers: dict[str, str]
) -> EventSourceResponse:
    return ChunkStreamResponse(run, model, include_usage, heartbeat_s, headers)


__all__ = ["stream_response"]
