"""Every gateway route as a `Call`: method, path, query, body and how to read the answer. The
sync and async clients only carry calls over the wire, so each route is described once."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from gateway.client._errors import UnexpectedResponse, error_from
from shared.api import (
    AllWorkers,
    CompanionDetail,
    FleetOverview,
    Health,
    MemberList,
    Readiness,
    RuntimeList,
    StreamTicket,
    WorkerList,
)
from shared.errors import InvalidInput
from shared.events import EventPage
from shared.models import (
    CancelResult,
    CreatedWorkers,
    CreateWorker,
    CreateWorkers,
    InputAccepted,
    InputRequest,
    MemberInfo,
    RunDetail,
    RunPage,
    RuntimeDetail,
    RuntimeSummary,
    ScopeEntry,
    SendInput,
    Strategy,
    TranscriptPage,
    WorkerDetail,
    WorkerSummary,
)
from shared.schedules import CreateSchedule, Schedule, ScheduleList
from shared.webhooks import UpdateWorker

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

DEFAULT_GATEWAY = "http://127.0.0.1:8000"
REQUEST_TIMEOUT_S = 10.0
COMPANION = "/api/companion"


def gateway_from_env() -> str:
    return os.environ.get("YOI_GATEWAY") or DEFAULT_GATEWAY


def token_from_env() -> str | None:
    return os.environ.get("YOI_API_TOKEN") or None


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    read: Callable[[bytes], T]
    params: Mapping[str, str | int] = field(default_factory=dict)
    body: Mapping[str, Any] | None = None
    timeout_s: float | None = None  # None: the client's default
    # Safe to send again when its answer was lost on the way (not a create: it would make two).
    idempotent: bool = True

    def answer(self, status: int, headers: Mapping[str, str], content: bytes) -> T:
        """The typed answer, or the typed error the gateway sent."""
        if status >= 400:
            raise error_from(status, headers, content)
        try:
            return self.read(content)
        except (ValidationError, ValueError) as exc:
            raise UnexpectedResponse(
                f"unexpected answer from the gateway to {self.method} {self.path}"
            ) from exc


def raise_for(status: int, headers: Mapping[str, str], content: bytes) -> None:
    """The typed error of a response that is one (a stream that did not open)."""
    if status >= 400:
        raise error_from(status, headers, content)


def _model(model: type[M]) -> Callable[[bytes], M]:
    return model.model_validate_json


def _valid(build: Callable[[], M]) -> M:
    """A request body validated here: bad input raises `InvalidInput` and sends nothing."""
    try:
        return build()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidInput(f"invalid {where}: {first['msg']}") from None


def runtime_path(runtime_id: str) -> str:
    return f"/api/runtimes/{quote(runtime_id, safe='')}"


def worker_path(runtime_id: str, worker_id: str) -> str:
    return f"{runtime_path(runtime_id)}/workers/{quote(worker_id, safe='')}"


def stream_path(base: str) -> str:
    return f"{base}/events/stream"


# -- runtimes and workers --------------------------------------------------------------------


def list_runtimes() -> Call[list[RuntimeSummary]]:
    return Call("GET", "/api/runtimes", lambda raw: RuntimeList.model_validate_json(raw).runtimes)


def get_runtime(runtime_id: str) -> Call[RuntimeDetail]:
    return Call("GET", runtime_path(runtime_id), _model(RuntimeDetail))


def list_workers(runtime_id: str) -> Call[list[WorkerSummary]]:
    path = f"{runtime_path(runtime_id)}/workers"
    return Call("GET", path, lambda raw: WorkerList.model_validate_json(raw).workers)


def all_workers() -> Call[AllWorkers]:
    return Call("GET", "/api/workers", _model(AllWorkers))


def create_worker(
    runtime_id: str,
    display_name: str,
    profile: str | None,
    scope: list[ScopeEntry] | None,
    delegated_from: str | None,
    webhook_url: str | None = None,
) -> Call[WorkerDetail]:
    body = _valid(
        lambda: CreateWorker(
            display_name=display_name,
            profile=profile,
            scope=scope or [],
            delegated_from=delegated_from,
            webhook_url=webhook_url,
        )
    )
    path = f"{runtime_path(runtime_id)}/workers"
    body_json = body.model_dump(mode="json", exclude_none=True)
    return Call("POST", path, _model(WorkerDetail), body=body_json, idempotent=False)


def create_workers(
    runtime_id: str, workers: Sequence[CreateWorker | Mapping[str, Any]]
) -> Call[list[WorkerDetail]]:
    """A batch create: each item a `CreateWorker` or its fields as a mapping; the whole batch
    is validated here first (the first bad item raises `InvalidInput` naming it, nothing sent)."""
    body = _valid(lambda: CreateWorkers.model_validate({"workers": list(workers)}))
    path = f"{runtime_path(runtime_id)}/workers:batch"
    body_json = body.model_dump(mode="json", exclude_none=True)
    return Call("POST", path, _created_workers, body=body_json, idempotent=False)


def _created_workers(data: bytes) -> list[WorkerDetail]:
    return CreatedWorkers.model_validate_json(data).workers


def get_worker(runtime_id: str, worker_id: str) -> Call[WorkerDetail]:
    return Call("GET", worker_path(runtime_id, worker_id), _model(WorkerDetail))


def stop(runtime_id: str, worker_id: str) -> Call[WorkerDetail]:
    return Call("POST", worker_path(runtime_id, worker_id) + "/stop", _model(WorkerDetail))


def update_worker(runtime_id: str, worker_id: str, webhook_url: str | None) -> Call[WorkerDetail]:
    """`PATCH` the Worker's webhook URL (None removes it)."""
    body = _valid(lambda: UpdateWorker(webhook_url=webhook_url))
    return Call(
        "PATCH", worker_path(runtime_id, worker_id), _model(WorkerDetail), body=body.model_dump()
    )


def list_runs(base: str, limit: int, before: str | None) -> Call[RunPage]:
    params: dict[str, str | int] = {"limit": limit}
    if before is not None:
        params["before"] = before
    return Call("GET", base + "/runs", _model(RunPage), params=params)


def get_run(base: str, run_id: str) -> Call[RunDetail]:
    return Call("GET", f"{base}/runs/{quote(run_id, safe='')}", _model(RunDetail))


def _accepted_or_run(raw: bytes) -> InputAccepted | RunDetail:
    """`POST …/inputs` with `wait_s`: 200 is the finished run, 202 the acceptance."""
    data = json.loads(raw)
    if isinstance(data, dict) and "run_id" in data:
        return RunDetail.model_validate(data)
    return InputAccepted.model_validate(data)


def send_waiting(
    base: str, text: str, input_id: str | None, strategy: Strategy | str | None, wait_s: float
) -> Call[InputAccepted | RunDetail]:
    """`send` that waits up to `wait_s` for the run: its `RunDetail` when it ended in time."""
    key = input_id if input_id is not None else uuid.uuid4().hex
    body = _valid(
        lambda: InputRequest.model_validate(
            {"text": text, "input_id": key, "strategy": strategy, "wait_s": wait_s}
        )
    )
    return Call(
        "POST",
        base + "/inputs",
        _accepted_or_run,
        body=body.model_dump(mode="json", exclude_none=True),
        timeout_s=wait_s + REQUEST_TIMEOUT_S,
    )


# -- a Worker's conversation (`base`: a worker path, or COMPANION) ---------------------------


def send(
    base: str, text: str, input_id: str | None, strategy: Strategy | str | None
) -> Call[InputAccepted]:
    """An input with an idempotency key (generated when not given), so a retry after a lost
    answer or a `Retry-After` never sends it twice."""
    key = input_id if input_id is not None else uuid.uuid4().hex
    body = _valid(
        lambda: SendInput.model_validate({"text": text, "input_id": key, "strategy": strategy})
    )
    path = base + ("/messages" if base == COMPANION else "/inputs")
    return Call(
        "POST", path, _model(InputAccepted), body=body.model_dump(mode="json", exclude_none=True)
    )


def cancel(base: str) -> Call[CancelResult]:
    return Call("POST", base + "/cancel", _model(CancelResult))


def transcript(base: str, limit: int, before: str | None) -> Call[TranscriptPage]:
    params: dict[str, str | int] = {"limit": limit}
    if before is not None:
        params["before"] = before
    return Call("GET", base + "/transcript", _model(TranscriptPage), params=params)


def events(base: str, after: str | None, limit: int, wait_ms: int) -> Call[EventPage]:
    params: dict[str, str | int] = {"limit": limit, "wait_ms": wait_ms}
    if after is not None:
        params["after"] = after
    timeout = REQUEST_TIMEOUT_S + wait_ms / 1000
    return Call("GET", base + "/events", _model(EventPage), params=params, timeout_s=timeout)


def stream_ticket(base: str) -> Call[StreamTicket]:
    return Call("POST", base + "/stream-ticket", _model(StreamTicket))


def companion() -> Call[CompanionDetail]:
    return Call("GET", COMPANION, _model(CompanionDetail))


# -- schedules -------------------------------------------------------------------------------


def create_schedule(
    runtime_id: str,
    worker_id: str,
    text: str,
    at: datetime | str | None,
    cron: str | None,
    timezone: str | None,
) -> Call[Schedule]:
    """Not sent again after a lost answer: that could make two schedules."""
    body = _valid(
        lambda: CreateSchedule.model_validate(
            {"text": text, "at": at, "cron": cron, "timezone": timezone}
        )
    )
    path = worker_path(runtime_id, worker_id) + "/schedules"
    body_json = body.model_dump(mode="json", exclude_none=True)
    return Call("POST", path, _model(Schedule), body=body_json, idempotent=False)


def list_schedules(runtime_id: str, worker_id: str) -> Call[list[Schedule]]:
    path = worker_path(runtime_id, worker_id) + "/schedules"
    return Call("GET", path, lambda raw: ScheduleList.model_validate_json(raw).schedules)


def delete_schedule(runtime_id: str, worker_id: str, schedule_id: str) -> Call[None]:
    path = f"{worker_path(runtime_id, worker_id)}/schedules/{quote(schedule_id, safe='')}"
    return Call("DELETE", path, lambda raw: None)


# -- operations ------------------------------------------------------------------------------


def health() -> Call[Health]:
    return Call("GET", "/healthz", _model(Health))


def ready() -> Call[Readiness]:
    """Readiness; not ready is the typed 503 (`RuntimeUnavailable`) naming which and why."""
    return Call("GET", "/readyz", _model(Readiness))


def fleet() -> Call[FleetOverview]:
    return Call("GET", "/api/fleet", _model(FleetOverview))


def members(runtime_id: str) -> Call[list[MemberInfo]]:
    path = f"{runtime_path(runtime_id)}/members"
    return Call("GET", path, lambda raw: MemberList.model_validate_json(raw).members)


def drain_member(runtime_id: str, member_id: str) -> Call[MemberInfo]:
    path = f"{runtime_path(runtime_id)}/members/{quote(member_id, safe='')}/drain"
    return Call("POST", path, _model(MemberInfo))


def metrics() -> Call[str]:
    return Call("GET", "/metrics", lambda raw: raw.decode())
