"""`Annotated` dependencies: the routes name what they need, never how it is found.

All `async def`: FastAPI runs a plain `def` dependency in a worker thread, a hop per request
that these lookups do not need.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.companion import Companion
from gateway.registry import RuntimeRegistry
from gateway.requests import checked_worker_id, gateway_of, runtime_of
from gateway.state import Gateway
from runtime_worker.runtime import Runtime


async def _gateway(request: Request) -> Gateway:
    return gateway_of(request)


GatewayDep = Annotated[Gateway, Depends(_gateway)]


async def _registry(gateway: GatewayDep) -> RuntimeRegistry:
    return gateway.runtimes()


RegistryDep = Annotated[RuntimeRegistry, Depends(_registry)]


async def _runtime(runtime_id: str, gateway: GatewayDep) -> Runtime:
    return runtime_of(gateway, runtime_id)


RuntimeDep = Annotated[Runtime, Depends(_runtime)]


async def _worker_id(worker_id: str) -> str:
    return checked_worker_id(worker_id)


WorkerIdDep = Annotated[str, Depends(_worker_id)]


async def _companion(gateway: GatewayDep) -> Companion:
    return gateway.the_companion()


CompanionDep = Annotated[Companion, Depends(_companion)]
