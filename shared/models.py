"""Wire models of Runtimes, Workers, inputs and transcripts (SPEC sections 1, 2 and 5)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.ids import DisplayName, InputId, RuntimeId, WorkerId
from shared.webhooks import WebhookInfo, WebhookUrl


class WorkerState(StrEnum):
    PENDING = "pending"
    IDLE = "idle"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


LIVE_STATES = frozenset({WorkerState.PENDING, WorkerState.IDLE, WorkerState.RUNNING})
ENDED_STATES = frozenset({WorkerState.STOPPED, WorkerState.FAILED})


MAX_WAIT_S = 60.0
"""The longest `wait_s` an input may ask for (a long poll's bound)."""


class Strategy(StrEnum):
    REJECT = "reject"
    ENQUEUE = "enqueue"
    INTERRUPT = "interrupt"


class RunResult(StrEnum):
    FINISHED = "finished"
    CANCELLED = "cancelled"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


class RuntimeKind(StrEnum):
    EMBEDDED = "embedded"
    FLEET = "fleet"


class ScopeMode(StrEnum):
    READ = "read"
    WRITE = "write"


class ScopeEntry(BaseModel):
    """One resource path a Worker claims; write claims of live Workers may not overlap."""

    model_config = ConfigDict(frozen=True)
    path: str = Field(min_length=1, max_length=512, pattern=r"^/[^\x00]*$")
    mode: ScopeMode = ScopeMode.READ


class Capabilities(BaseModel):
    create_worker: bool = True
    send_input: bool = True
    cancel: bool = True
    stop: bool = True
    transcript: bool = True
    events: bool = True
    event_stream: bool = True
    usage: bool = True


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    runs: int = 0
    runs_by_result: dict[str, int] = Field(default_factory=dict)
    errors_by_code: dict[str, int] = Field(
        default_factory=dict,
        description="Runs ended by an error, by its code (`provider_error`, `dead_letter`…).",
    )
    last_error: str | None = None


class MemberInfo(BaseModel):
    member_id: str
    capacity: int
    hosted: int
    alive: bool
    draining: bool = Field(
        default=False, description="Told to drain: it hands its Workers back and takes no new ones."
    )
    heartbeat_age_ms: int | None = Field(
        default=None, description="Since its last heartbeat (None for an embedded runtime)."
    )


class RuntimeDiagnostics(BaseModel):
    kind: RuntimeKind
    members: list[MemberInfo] = Field(default_factory=list)
    workers: int = 0
    version: str


class RuntimeSummary(BaseModel):
    runtime_id: RuntimeId
    kind: RuntimeKind
    status: Literal["ok", "degraded", "unavailable"]
    workers: int


class RuntimeDetail(RuntimeSummary):
    capabilities: Capabilities
    diagnostics: RuntimeDiagnostics
    usage: Usage


class WorkerDiagnostics(BaseModel):
    kind: RuntimeKind
    host: str | None = None
    epoch: int = 0
    queue_depth: int = 0
    version: str


class WorkerSummary(BaseModel):
    runtime_id: RuntimeId
    worker_id: WorkerId
    display_name: DisplayName
    display_ref: str
    profile: str
    state: WorkerState
    kind: RuntimeKind
    created_at: float


class WorkerRow(WorkerSummary):
    """A Worker as the fleet dashboard lists it: its summary with where and how it runs."""

    host: str | None = None
    epoch: int = 0
    queue_depth: int = 0
    usage: Usage


class InFlight(BaseModel):
    """The current run's answer so far, and the cursor it reflects: stream on `after=cursor`."""

    run_id: str
    input_id: str
    attempt: int
    text: str
    cursor: str


class WorkerDetail(WorkerSummary):
    scope: list[ScopeEntry] = Field(default_factory=list)
    delegated_from: WorkerId | None = None
    capabilities: Capabilities
    diagnostics: WorkerDiagnostics
    usage: Usage
    in_flight: InFlight | None = None
    cursor: str = Field(description="The latest event cursor: `after=cursor` follows from now.")
    webhook: WebhookInfo | None = None


class CreateWorker(BaseModel):
    model_config = ConfigDict(extra="forbid")
    display_name: DisplayName
    profile: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    scope: list[ScopeEntry] = Field(default_factory=list, max_length=64)
    delegated_from: WorkerId | None = None
    webhook_url: WebhookUrl | None = Field(
        default=None,
        description="Where each finished run is posted (an http(s) URL on the allow-list).",
    )


MAX_CREATE_BATCH = 1000
"""Workers per batch create (`POST …/workers:batch`); the body limit bounds its size too."""


class CreateWorkers(BaseModel):
    """The body of a batch create: Workers made in one request, answered in this order."""

    model_config = ConfigDict(extra="forbid")
    workers: list[CreateWorker] = Field(min_length=1, max_length=MAX_CREATE_BATCH)


class CreatedWorkers(BaseModel):
    """A batch create's answer: the new Workers' details, in the order they were asked for."""

    workers: list[WorkerDetail]


class SendInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1)
    input_id: InputId | None = None
    strategy: Strategy | None = None


class InputRequest(SendInput):
    """The body of `POST …/inputs`: an input, and how long to wait for its run."""

    wait_s: float | None = Field(
        default=None,
        ge=0,
        le=MAX_WAIT_S,
        description="Wait up to this long for the run: 200 with it when it ends in time, else 202.",
    )


class InputAccepted(BaseModel):
    input_id: str
    cursor: str


class TranscriptRole(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    NOTICE = "notice"


class RunUsage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0


class TranscriptEntry(BaseModel):
    """A run's final entry (the one with a `result`) is also the run log's record of the run:
    its attempt, start time, reason and usage."""

    cursor: str = ""
    role: TranscriptRole
    text: str
    ts: float
    run_id: str | None = None
    input_id: str | None = None
    result: RunResult | None = None
    attempt: int | None = None
    started_at: float | None = None
    reason: str | None = None
    usage: RunUsage | None = None


class TranscriptPage(BaseModel):
    entries: list[TranscriptEntry]
    next_before: str | None


class CancelResult(BaseModel):
    worker_id: WorkerId
    state: WorkerState
    cancelled: bool = Field(description="False when nothing was running: cancel is a no-op then.")


class RunInfo(BaseModel):
    """One run of a Worker: `state` running (no `result` yet) or finished (its `result`)."""

    run_id: str
    input_id: str
    attempt: int
    state: Literal["running", "finished"]
    result: RunResult | None = None
    reason: str | None = None
    started_at: float
    finished_at: float | None = None
    usage: RunUsage = Field(default_factory=RunUsage)


class RunDetail(RunInfo):
    """A run with its answer's text (so far, while running)."""

    text: str = ""


class RunPage(BaseModel):
    runs: list[RunInfo] = Field(description="Newest first.")
    next_before: str | None = Field(description="`before=` it pages further back; null at the end.")
