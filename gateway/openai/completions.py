"""One chat completion: the last user message sent to a Worker, its run read back from the log.

Rules (the README's "OpenAI-compatible API" section states them for users):

- The Worker's own history is the context. Of the request's `messages` only the last one is
  sent, and it must be a `user` message; earlier messages (the client's copy of the history)
  and `system`/`developer` messages are ignored (the profile's prompt is the system prompt).
- Inputs go with strategy `reject`: a Worker still answering someone else answers 409
  `worker_busy` (with `Retry-After`; the official clients retry it). Being accepted on an idle
  Worker makes this input the head of its queue, so "cancel the current run" cancels this one.
- A client that leaves before the run ends (a dropped stream, a closed connection), or a run
  that outlasts `YOI_CHAT_TIMEOUT_S`, cancels the run: nobody would read its answer.
- `finished` and `cancelled` runs answer `finish_reason: "stop"` with their text (the text the
  transcript keeps); `failed` is 502 `provider_error`, `timed_out` 504 `timeout`. A stream that
  already sent text reports those as an error chunk (`data: {"error": ...}`) before `[DONE]`.
- A rerun after the loss of a host (`attempt` > 1) replaces the text: a plain completion answers
  the last attempt's; a stream that already sent the abandoned attempt's text cannot take it
  back, so it ends with an error chunk `host_lost` (the Worker's transcript has the answer).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio

from gateway.openai.models import Target
from runtime_worker.runtime import MAX_PAGE
from shared.errors import InvalidInput, ProviderError, Timeout, YoiError
from shared.events import Event
from shared.models import InputAccepted, RunResult
from shared.openai import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    CompletionUsage,
)

log = logging.getLogger("yoi.gateway")

POLL_WAIT_MS = 10_000
"""One long-poll of the Worker's log; the completion's deadline bounds the whole wait."""
RELEASE_TIMEOUT_S = 5.0


def last_user_text(request: ChatCompletionRequest) -> str:
    last = request.messages[-1]
    if last.role != "user":
        raise InvalidInput("the last message must be a user message: it is what the Worker gets")
    text = last.text()
    if not text.strip():
        raise InvalidInput("the last user message has no text")
    return text


def completion_id(input_id: str) -> str:
    return f"chatcmpl-{input_id}"


class HostLost(YoiError):
    """A stream sent text of an attempt that was abandoned when its host was lost."""

    code = "host_lost"
    http_status = 502
    retryable_default = True


@dataclass
class Run:
    """One accepted input followed through the Worker's event log to its `run_finished`."""

    target: Target
    accepted: InputAccepted
    timeout_s: float
    created: int = field(default_factory=lambda: int(time.time()))
    text: list[str] = field(default_factory=list)
    final_text: str | None = None
    attempt: int = 1
    usage: CompletionUsage = field(default_factory=lambda: CompletionUsage.of(0, 0))
    result: RunResult | None = None
    error: str | None = None
    released: bool = False

    @property
    def answer(self) -> str:
        return self.final_text if self.final_text is not None else "".join(self.text)

    def outcome_error(self) -> YoiError | None:
        """The error a `failed` or `timed_out` run answers; None for an answer."""
        if self.result is RunResult.FAILED:
            return ProviderError(self.error or "the answer failed", retryable=False)
        if self.result is RunResult.TIMED_OUT:
            return Timeout("the answer timed out", retryable=False)
        return None

    async def events(self) -> AsyncIterator[Event]:
        """This input's events, folded into the run's state as they pass, up to `run_finished`."""
        runtime, worker_id = self.target.runtime, self.target.worker_id
        cursor = self.accepted.cursor
        deadline = anyio.current_time() + self.timeout_s
        while self.result is None:
            remaining_ms = int((deadline - anyio.current_time()) * 1000)
            if remaining_ms <= 0:
                raise Timeout("the answer did not finish in time")
            page = await runtime.events(
                worker_id, after=cursor, limit=MAX_PAGE, wait_ms=min(remaining_ms, POLL_WAIT_MS)
            )
            cursor = page.cursor
            for event in page.events:
                if event.input_id != self.accepted.input_id:
                    continue
                self._fold(event)
                yield event
                if self.result is not None:
                    return

    def _fold(self, event: Event) -> None:
        if event.type == "run_started":
            self.attempt = event.attempt
            self.text.clear()  # a rerun: the abandoned attempt's text is void
        elif event.type == "text_delta":
            self.text.append(event.text)
        elif event.type == "text_done":
            self.final_text = event.text
        elif event.type == "usage":
            self.usage = CompletionUsage.of(event.input_tokens, event.output_tokens)
        elif event.type == "error":
            self.error = event.message
        elif event.type == "run_finished":
            self.result = event.result

    async def release(self, *, cancel: bool = True) -> None:
        """After the answer or when the client left: cancel the run if it has not finished (the
        input is the head of the queue, see the module docstring), stop a single-use Worker.
        Shielded, so it completes even while the request is being cancelled. Once only: a
        second cancel could hit the input queued after this one."""
        if self.released:
            return
        self.released = True
        runtime, worker_id = self.target.runtime, self.target.worker_id
        with anyio.CancelScope(shield=True) as scope:
            scope.deadline = anyio.current_time() + RELEASE_TIMEOUT_S
            try:
                if cancel and self.result is None:
                    await runtime.cancel(worker_id)
                if self.target.single_use:
                    await runtime.stop_worker(worker_id)
            except YoiError as exc:  # the answer (or the client's leaving) matters more
                log.warning("releasing a completion's run failed: %s", exc.code)
        if scope.cancelled_caught:
            log.warning("releasing a completion's run timed out")

    def completion(self, model: str) -> ChatCompletion:
        return ChatCompletion(
            id=completion_id(self.accepted.input_id),
            created=self.created,
            model=model,
            choices=[Choice(message=AssistantMessage(content=self.answer), finish_reason="stop")],
            usage=self.usage,
        )


async def complete(run: Run, model: str) -> ChatCompletion:
    """The whole answer at once (`stream: false`)."""
    try:
        async for _ in run.events():
            pass
    finally:
        await run.release()
    error = run.outcome_error()
    if error is not None:
        raise error
    return run.completion(model)


__all__ = ["HostLost", "Run", "complete", "completion_id", "last_user_text"]
