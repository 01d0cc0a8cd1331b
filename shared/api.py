"""HTTP bodies of the gateway (SPEC section 5) that wrap the domain models of `shared.models`.

Kept apart from `shared.models` so clients (the CLI, the console's tests) parse exactly what the
gateway answers, while the domain models stay free of HTTP envelopes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from shared.errors import ErrorEnvelope
from shared.models import (
    CancelResult,
    MemberInfo,
    RuntimeSummary,
    SendInput,
    WorkerDetail,
    WorkerRow,
    WorkerSummary,
)


class RuntimeList(BaseModel):
    runtimes: list[RuntimeSummary]


class WorkerList(BaseModel):
    workers: list[WorkerSummary]


class AllWorkers(BaseModel):
    """Every Worker of every runtime; a fleet runtime that did not answer is named, not hidden."""

    workers: list[WorkerSummary]
    unavailable: list[str] = Field(
        default_factory=list, description="Runtime ids skipped because they did not answer."
    )


class CompanionDetail(WorkerDetail):
    """The Companion's WorkerDetail plus the workspace it serves (the console shows it)."""

    workspace: str


class CompanionMessage(SendInput):
    """`POST /api/companion/messages`: the same body as a Worker's inputs."""


class StreamTicket(BaseModel):
    """A short-lived credential for one Worker's event stream, passed as `?ticket=`."""

    ticket: str
    expires_in: int = Field(description="Seconds the ticket stays valid.")
    runtime_id: str
    worker_id: str


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class RuntimeReadiness(BaseModel):
    runtime_id: str
    kind: str
    ready: bool
    reason: str | None = Field(
        default=None, description="Why not ready: `unreachable` or `no_alive_member`."
    )


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"
    runtimes: list[RuntimeReadiness]


class NotReady(ErrorEnvelope):
    """`/readyz` when not ready: the typed error plus which runtime is not ready and why."""

    runtimes: list[RuntimeReadiness]


class MemberList(BaseModel):
    members: list[MemberInfo]


class FleetRuntime(RuntimeSummary):
    """A runtime on the fleet dashboard: its summary, whether it is ready, and its members."""

    ready: bool
    members: list[MemberInfo]


class FleetOverview(BaseModel):
    """`GET /api/fleet`: what the dashboard polls, in one request."""

    runtimes: list[FleetRuntime]
    workers: list[WorkerRow]
    unavailable: list[str] = Field(
        default_factory=list, description="Runtime ids whose Workers are missing: no answer."
    )


__all__ = [
    "AllWorkers",
    "CancelResult",
    "CompanionDetail",
    "CompanionMessage",
    "FleetOverview",
    "FleetRuntime",
    "Health",
    "MemberList",
    "NotReady",
    "Readiness",
    "RuntimeList",
    "RuntimeReadiness",
    "StreamTicket",
    "WorkerList",
]
