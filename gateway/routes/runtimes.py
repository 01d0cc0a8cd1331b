"""`/api/runtimes`: the runtimes this gateway serves."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from gateway.deps import RegistryDep, RuntimeDep
from gateway.errors import error_responses
from shared.api import RuntimeList
from shared.models import RuntimeDetail

router = APIRouter(prefix="/api/runtimes", tags=["runtimes"], responses=error_responses(500, 401))


@router.get("", responses=error_responses(422), operation_id="list_runtimes")
async def list_runtimes(registry: RegistryDep) -> RuntimeList:
    """Every runtime; one that does not answer is listed with status `unavailable`."""
    summaries = await asyncio.gather(*(runtime.summary() for runtime in registry.all()))
    return RuntimeList(runtimes=list(summaries))


@router.get("/{runtime_id}", responses=error_responses(404, 422, 503), operation_id="get_runtime")
async def get_runtime(runtime: RuntimeDep) -> RuntimeDetail:
    """Capabilities, diagnostics (kind, members, versions) and the usage overview."""
    return await runtime.detail()
