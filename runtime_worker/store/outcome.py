"""How a finished run is recorded, built once for every store: events, transcript, next state."""

from __future__ import annotations

from collections.abc import Iterable

from runtime_worker.store.base import QueuedInput, RunOutcome, WorkerRecord
from shared.events import ErrorEvent, Event, RunFinished, TextDone, UsageEvent
from shared.models import (
    RunDetail,
    RunResult,
    RunUsage,
    TranscriptEntry,
    TranscriptRole,
    Usage,
    WorkerState,
)

_NOTICES = {
    RunResult.CANCELLED: "The answer was cancelled.",
    RunResult.FAILED: "The answer failed.",
    RunResult.TIMED_OUT: "The answer timed out.",
}


def final_events(
    worker_id: str, run_id: str | None, item: QueuedInput, outcome: RunOutcome, ts: float
) -> list[Event]:
    """The text deltas the run had not written yet (`outcome.deltas`), then `error` (when there
    is one), `text_done`, `usage`, `run_finished`, in that order."""
    ids = {"worker_id": worker_id, "ts": ts, "run_id": run_id, "input_id": item.input_id}
    events: list[Event] = list(outcome.deltas)
    if outcome.error_code:
        events.append(
            ErrorEvent(
                **ids,
                code=outcome.error_code,
                message=outcome.error_message or outcome.error_code,
                retryable=outcome.error_retryable,
            )
        )
    events.append(TextDone(**ids, text=outcome.text))
    events.append(
        UsageEvent(**ids, input_tokens=outcome.input_tokens, output_tokens=outcome.output_tokens)
    )
    events.append(RunFinished(**ids, result=outcome.result, reason=outcome.reason))
    return events


def user_entry(item: QueuedInput, run_id: str) -> TranscriptEntry:
    """The transcript's entry for an input, written when its run first starts (the Redis store
    fills the same model's JSON in lua/take_run.lua)."""
    return TranscriptEntry(
        role=TranscriptRole.USER, text=item.text, ts=item.ts, input_id=item.input_id, run_id=run_id
    )


def transcript_for(
    run_id: str | None,
    item: QueuedInput,
    outcome: RunOutcome,
    ts: float,
    *,
    attempt: int = 1,
    started_at: float = 0.0,
) -> TranscriptEntry:
    """The assistant's answer (a partial one marked by `result`), or a notice if it said nothing;
    the run's record too (`run_of`): its attempt, start time (from the Worker's record: the
    Redis store leaves holes for them, see lua/finish_run.lua), reason and usage."""
    if outcome.text or outcome.result is RunResult.FINISHED:
        role, text = TranscriptRole.ASSISTANT, outcome.text
    else:
        role = TranscriptRole.NOTICE
        text = _NOTICES[outcome.result]
        if outcome.error_message:
            text = f"{text} {outcome.error_message}"
    return TranscriptEntry(
        role=role,
        text=text,
        ts=ts,
        run_id=run_id,
        input_id=item.input_id,
        result=outcome.result,
        attempt=attempt,
        started_at=started_at,
        reason=outcome.reason,
        usage=RunUsage(input_tokens=outcome.input_tokens, output_tokens=outcome.output_tokens),
    )


def final_entry(
    record: WorkerRecord, run_id: str, item: QueuedInput, outcome: RunOutcome, ts: float
) -> TranscriptEntry:
    """`transcript_for` with the attempt and start time the record holds for the run."""
    attempt, started_at = max(record.run_attempt, 1), record.run_started_at or ts
    return transcript_for(run_id, item, outcome, ts, attempt=attempt, started_at=started_at)


def run_of(entry: TranscriptEntry) -> RunDetail | None:
    """The run a final transcript entry records; None for any other entry."""
    if entry.result is None or entry.run_id is None:
        return None
    return RunDetail(
        run_id=entry.run_id,
        input_id=entry.input_id or "",
        attempt=entry.attempt or 1,
        state="finished",
        result=entry.result,
        reason=entry.reason,
        started_at=entry.started_at if entry.started_at is not None else entry.ts,
        finished_at=entry.ts,
        usage=entry.usage or RunUsage(),
        text=entry.text if entry.role is TranscriptRole.ASSISTANT else "",
    )


def final_state(record: WorkerRecord) -> WorkerState:
    """After `done_seq` moved: still running while inputs wait, stopped once a stop drained."""
    if record.state is WorkerState.STOPPING:
        return WorkerState.STOPPING if record.queue_depth else WorkerState.STOPPED
    return WorkerState.RUNNING if record.queue_depth else WorkerState.IDLE


def count_run(usage: Usage, outcome: RunOutcome) -> None:
    """A finished run's tokens, its result and its error (if any) added to the totals (what
    lua/finish_run.lua does to the record's fields)."""
    usage.input_tokens += outcome.input_tokens
    usage.output_tokens += outcome.output_tokens
    usage.runs += 1
    result = outcome.result.value
    usage.runs_by_result[result] = usage.runs_by_result.get(result, 0) + 1
    if outcome.error_code:
        usage.last_error = outcome.error_code
        codes = usage.errors_by_code
        codes[outcome.error_code] = codes.get(outcome.error_code, 0) + 1


def total_usage(records: Iterable[WorkerRecord]) -> Usage:
    """The usage of many Workers added up (a runtime's overview, the gateway's metrics)."""
    total = Usage()
    for record in records:
        total.input_tokens += record.usage.input_tokens
        total.output_tokens += record.usage.output_tokens
        total.runs += record.usage.runs
        for result, count in record.usage.runs_by_result.items():
            total.runs_by_result[result] = total.runs_by_result.get(result, 0) + count
        for code, count in record.usage.errors_by_code.items():
            total.errors_by_code[code] = total.errors_by_code.get(code, 0) + count
        total.last_error = record.usage.last_error or total.last_error
    return total
