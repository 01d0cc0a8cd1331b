"""Operations: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.deps import GatewayDep, RegistryDep
from gateway.errors import error_responses
from gateway.fleet_metrics import read_runtime
from runtime_worker.runtime import Runtime
from shared.api import Health, NotReady, Readiness, RuntimeReadiness
from shared.errors import ErrorBody, RuntimeUnavailable
from shared.models import RuntimeKind

router = APIRouter(tags=["operations"])

PROBE_TIMEOUT_S = 2.0


@router.get("/healthz", operation_id="get_health")
async def healthz() -> Health:
    """200 while the process serves: the gateway is alive (its runtimes may not be)."""
    return Health()


async def _probe(runtime: Runtime) -> RuntimeReadiness:
    ready = RuntimeReadiness(runtime_id=runtime.runtime_id, kind=runtime.kind.value, ready=False)
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            await runtime.ping()
            members = await runtime.members()
    except (RuntimeUnavailable, TimeoutError):
        ready.reason = "unreachable"
        return ready
    if runtime.kind is RuntimeKind.FLEET and not any(member.alive for member in members):
        ready.reason = "no_alive_member"
        return ready
    ready.ready = True
    return ready


@router.get(
    "/readyz",
    responses={503: {"model": NotReady, "description": "Not ready."}},
    operation_id="get_readiness",
)
async def readyz(registry: RegistryDep) -> Response:
    """200 when the embedded runtime answers and every fleet's Redis answers with at least one
    alive member; else 503 `runtime_unavailable` naming which runtime is not ready and why."""
    probes = list(await asyncio.gather(*(_probe(runtime) for runtime in registry.all())))
    waiting = [probe for probe in probes if not probe.ready]
    if not waiting:
        return JSONResponse(Readiness(runtimes=probes).model_dump())
    names = ", ".join(f"{probe.runtime_id} ({probe.reason})" for probe in waiting)
    body = NotReady(
        error=ErrorBody(code="runtime_unavailable", message=f"not ready: {names}", retryable=True),
        runtimes=probes,
    )
    return JSONResponse(body.model_dump(), status_code=503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **error_responses(401)},
    operation_id="get_metrics",
)
async def metrics(gateway: GatewayDep, registry: RegistryDep) -> Response:
    """Prometheus text format; protected by the token when one is set."""
    runtimes = registry.all()
    reads = await asyncio.gather(*(read_runtime(r, PROBE_TIMEOUT_S) for r in runtimes))
    for runtime, read in zip(runtimes, reads, strict=True):
        gateway.metrics.set_run_totals(runtime.runtime_id, None if read is None else read[0])
        if read is not None:
            gateway.metrics.fleet.figures[runtime.runtime_id] = read[1]
    return Response(gateway.metrics.render(), media_type=CONTENT_TYPE_LATEST)
