"""The event union (SPEC section 5): one Literal-discriminated model per `type`, one adapter."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from shared.models import RunResult, WorkerState

EVENT_SCHEMA_VERSION = 1


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore")
    v: int = EVENT_SCHEMA_VERSION
    cursor: str = ""
    worker_id: str
    ts: float
    run_id: str | None = None
    input_id: str | None = None


class UserMessage(_Event):
    type: Literal["user_message"] = "user_message"
    text: str


class RunStarted(_Event):
    type: Literal["run_started"] = "run_started"
    attempt: int = 1


class TextDelta(_Event):
    type: Literal["text_delta"] = "text_delta"
    text: str


class TextDone(_Event):
    type: Literal["text_done"] = "text_done"
    text: str


class UsageEvent(_Event):
    type: Literal["usage"] = "usage"
    input_tokens: int = 0
    output_tokens: int = 0


class RunFinished(_Event):
    type: Literal["run_finished"] = "run_finished"
    result: RunResult
    reason: str | None = None


class StateChanged(_Event):
    type: Literal["state_changed"] = "state_changed"
    state: WorkerState


class ErrorEvent(_Event):
    type: Literal["error"] = "error"
    code: str
    message: str
    retryable: bool = False


Event = Annotated[
    UserMessage
    | RunStarted
    | TextDelta
    | TextDone
    | UsageEvent
    | RunFinished
    | StateChanged
    | ErrorEvent,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


class EventPage(BaseModel):
    events: list[Event]
    cursor: str


def parse_event(raw: str | bytes) -> Event:
    return EVENT_ADAPTER.validate_json(raw)


def dump_event(event: Event) -> str:
    """JSON without the cursor: the store assigns it (it is the stream entry id)."""
    return event.model_dump_json(exclude={"cursor"}, exclude_none=True)


_LEGACY_STORED = '{"v":1,"worker_id":'  # how entries were stored before: as `dump_event`


def dump_stored(event: Event) -> str:
    """An event as a store keeps it under its Worker's key: `dump_event` without the worker id
    (the key says it; 50 bytes of every entry). `parse_stored` puts it back, so readers see
    the same events."""
    return event.model_dump_json(exclude={"cursor", "worker_id"}, exclude_none=True)


def parse_stored(raw: str, worker_id: str, cursor: str) -> Event:
    """The event `dump_stored` kept (or `dump_event`, as stored before) of `worker_id`, at
    `cursor`. `worker_id` comes from a key, so it holds no character JSON would escape."""
    if not raw.startswith(_LEGACY_STORED):
        raw = '{"worker_id":"' + worker_id + '",' + raw[1:]
    return parse_event(raw).model_copy(update={"cursor": cursor})
