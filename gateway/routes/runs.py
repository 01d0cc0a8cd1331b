"""Runs: `…/workers/{worker_id}/runs` (newest first) and `…/runs/{run_id}` (with the text)."""

from __future__ import annotations

from fastapi import APIRouter, Path

from gateway.deps import RuntimeDep, WorkerIdDep
from gateway.errors import error_responses
from gateway.routes._shared import BEFORE, TRANSCRIPT_LIMIT
from shared.ids import INPUT_ID_PATTERN
from shared.models import RunDetail, RunPage

router = APIRouter(
    prefix="/api/runtimes/{runtime_id}/workers/{worker_id}/runs",
    tags=["runs"],
    responses=error_responses(401, 404, 422, 503),
)


@router.get("", operation_id="list_runs")
async def list_runs(
    runtime: RuntimeDep,
    worker_id: WorkerIdDep,
    limit: int = TRANSCRIPT_LIMIT,
    before: str | None = BEFORE,
) -> RunPage:
    """The running run (on the first page) and then finished runs, newest first; the log keeps
    as many runs as the profile's transcript bound."""
    return await runtime.runs(worker_id, limit=limit, before=before)


@router.get("/{run_id}", operation_id="get_run")
async def get_run(
    runtime: RuntimeDep,
    worker_id: WorkerIdDep,
    run_id: str = Path(pattern=INPUT_ID_PATTERN, max_length=128),
) -> RunDetail:
    """One run with its answer's text (so far, while it runs); 404 `run_not_found` when it is not
    in the run log."""
    return await runtime.run(worker_id, run_id)
