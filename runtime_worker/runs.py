"""Runs as a resource: a Worker's run log (finished runs, kept by the store in the same step
that finishes them) with the running one on top, and waiting for an input's run to end.

The log is bounded like the transcript (the profile's `transcript_maxlen` runs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime_worker.store.base import WorkerRecord
from runtime_worker.store.cursor import format_cursor, parse_cursor
from shared.errors import CursorExpired, RunNotFound
from shared.models import InputAccepted, RunDetail, RunInfo, RunPage
from shared.timeutil import monotonic_s

if TYPE_CHECKING:
    from runtime_worker._runtime_base import RuntimeBase


def _running(record: WorkerRecord, text: str = "") -> RunDetail | None:
    if record.run_id is None:
        return None
    return RunDetail(
        run_id=record.run_id,
        input_id=record.run_input_id or "",
        attempt=max(record.run_attempt, 1),
        state="running",
        started_at=record.run_started_at or 0.0,
        text=text,
    )


def _info(run: RunDetail) -> RunInfo:
    return RunInfo.model_validate(run.model_dump(exclude={"text"}))


async def list_runs(
    runtime: RuntimeBase, worker_id: str, limit: int, before: str | None
) -> RunPage:
    """Newest first: the running run (first page only), then finished ones. `next_before` is a
    run log cursor."""
    record = await runtime._record(worker_id)
    if before is not None:
        parse_cursor(before)  # InvalidInput for a malformed one, before any read
    running = _running(record) if before is None else None
    page = await runtime.store.read_runs(worker_id, limit, before)
    kept = page.runs[: limit - 1] if running is not None else page.runs
    runs = ([_info(running)] if running is not None else []) + [_info(r) for _, r in kept]
    next_before = page.next_before
    if len(kept) < len(page.runs):  # the running run took a finished one's place
        if kept:
            next_before = kept[-1][0]
        else:  # just after the newest finished one, so that `before=` it still includes it
            ms, n = parse_cursor(page.runs[0][0])
            next_before = format_cursor((ms, n + 1))
    return RunPage(runs=runs, next_before=next_before)


async def get_run(runtime: RuntimeBase, worker_id: str, run_id: str) -> RunDetail:
    record = await runtime._record(worker_id)
    if record.run_id == run_id:
        in_flight = await runtime._in_flight(record)
        running = _running(record, in_flight.text if in_flight is not None else "")
        if running is not None:
            return running
    found = await runtime.store.find_run(worker_id, run_id)
    if found is None:
        raise RunNotFound(f"no run {run_id} in the run log of worker {worker_id}")
    return found


async def wait_run(
    runtime: RuntimeBase, worker_id: str, accepted: InputAccepted, wait_s: float
) -> RunDetail | None:
    """The finished run of an accepted input, if it ends within `wait_s`; else None (the caller
    answers 202 and the client follows the events from `accepted.cursor`)."""
    deadline = monotonic_s() + wait_s
    cursor = accepted.cursor
    try:
        while (left_ms := int((deadline - monotonic_s()) * 1000)) > 0:
            for event in await runtime.store.tail_events(worker_id, cursor, 1000, left_ms):
                cursor = event.cursor
                if event.type == "run_finished" and event.input_id == accepted.input_id:
                    return await runtime.store.find_run(worker_id, event.run_id or "")
    except CursorExpired:  # a retried input whose run is long gone from the event window
        return None
    return None
