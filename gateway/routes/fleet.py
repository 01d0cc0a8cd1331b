"""Operators: `/api/fleet` (what the dashboard polls), members, and draining a member."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from gateway.deps import RegistryDep, RuntimeDep
from gateway.errors import error_responses
from runtime_worker import operators
from runtime_worker.runtime import Runtime
from shared.api import FleetOverview, FleetRuntime, MemberList
from shared.errors import RuntimeUnavailable
from shared.models import MemberInfo, WorkerRow

router = APIRouter(tags=["fleet"], responses=error_responses(401))

PROBE_TIMEOUT_S = 2.0


async def _runtime_view(runtime: Runtime) -> tuple[FleetRuntime, list[WorkerRow] | None]:
    """One runtime's card and rows; a runtime that does not answer in time is `unavailable`
    with no rows (the dashboard says so rather than showing a stale picture)."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            summary = await runtime.summary()
            if summary.status != "unavailable":
                members = await runtime.members()
                rows = await operators.worker_rows(runtime)
                ready = summary.status == "ok"
                return FleetRuntime(**summary.model_dump(), ready=ready, members=members), rows
    except (RuntimeUnavailable, TimeoutError):
        pass
    card = FleetRuntime(
        runtime_id=runtime.runtime_id,
        kind=runtime.kind,
        status="unavailable",
        workers=0,
        ready=False,
        members=[],
    )
    return card, None


@router.get("/api/fleet", responses=error_responses(422))
async def fleet_overview(registry: RegistryDep) -> FleetOverview:
    """Every runtime with readiness and members, and every Worker with host, epoch, queue
    depth and usage: the fleet dashboard's one poll."""
    views = await asyncio.gather(*(_runtime_view(runtime) for runtime in registry.all()))
    overview = FleetOverview(runtimes=[card for card, _ in views], workers=[])
    for card, rows in views:
        if rows is None:
            overview.unavailable.append(card.runtime_id)
        else:
            overview.workers.extend(rows)
    return overview


@router.get("/api/runtimes/{runtime_id}/members", responses=error_responses(404, 422, 503))
async def list_members(runtime: RuntimeDep) -> MemberList:
    """The runtime's members: capacity, hosted count, heartbeat age, alive and draining."""
    return MemberList(members=await runtime.members())


@router.post(
    "/api/runtimes/{runtime_id}/members/{member_id}/drain",
    responses=error_responses(404, 422, 501, 503),
)
async def drain_member(runtime: RuntimeDep, member_id: str) -> MemberInfo:
    """Tell a member to hand its Workers back and take no new ones (idempotent); it does so
    at its next heartbeat, each busy Worker once its queue is empty."""
    return await operators.drain_member(runtime, member_id)
