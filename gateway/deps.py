"""`Annotated` dependencies: the routes name what they need, never how it is found.

All `async def`: FastAPI runs a plain `def` dependency in a worker thread, a hop per request
that these lookups do not need.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.companion import Companion
from gateway.registry import RuntimeRegistry
from gateway.state import Gateway
from runtime_worker.runtime import Runtime
from shared.errors import WorkerNotFound
from shared.ids import is_worker_id


async def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(_gateway)]


async def _registry(gateway: GatewayDep) -> RuntimeRegistry:
    return gateway.runtimes()


RegistryDep = Annotated[RuntimeRegistry, Depends(_registry)]


async def _runtime(runtime_id: str, registry: RegistryDep) -> Runtime:
    """The path's runtime; unknown or malformed ids are 404 `runtime_not_found`."""
    return registry.get(runtime_id)


RuntimeDep = Annotated[Runtime, Depends(_runtime)]


async def _worker_id(worker_id: str) -> str:
    """A malformed id names no Worker: 404 `worker_not_found` rather than 422."""
    if not is_worker_id(worker_id):
        raise WorkerNotFound("malformed worker id")
    return worker_id


WorkerIdDep = Annotated[str, Depends(_worker_id)]


async def _companion(gateway: GatewayDep) -> Companion:
    return gateway.the_companion()


CompanionDep = Annotated[Companion, Depends(_companion)]
