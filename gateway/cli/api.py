"""The CLI commands that go through the gateway: list, create, send, cancel, tail, transcript."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer

from gateway.cli.client import GatewayClient, Target
from gateway.cli.errors import FAILED, INTERRUPTED, USAGE, ApiError, CliFailure, busy
from gateway.cli.refs import WorkerRef, resolve
from gateway.cli.render import age, event_line, table, transcript_line
from shared.api import AllWorkers, RuntimeList, WorkerList
from shared.events import Event, EventPage
from shared.ids import is_display_name, is_runtime_id
from shared.models import (
    CancelResult,
    InputAccepted,
    RunResult,
    TranscriptPage,
    WorkerDetail,
)

PAGE_LIMIT = 1000
LONG_POLL_WAIT_MS = 25_000


def list_runtimes(target: Target) -> None:
    with GatewayClient(target) as client:
        runtimes = client.get("/api/runtimes", RuntimeList).runtimes
    rows = [[r.runtime_id, r.kind.value, r.status, str(r.workers)] for r in runtimes]
    typer.echo(table(["RUNTIME", "KIND", "STATUS", "WORKERS"], rows))


def list_workers(target: Target, runtime_id: str | None) -> None:
    unavailable: list[str] = []
    with GatewayClient(target) as client:
        if runtime_id is None:
            listing = client.get("/api/workers", AllWorkers)
            workers, unavailable = listing.workers, listing.unavailable
        else:
            path = f"/api/runtimes/{_runtime(runtime_id)}/workers"
            workers = client.get(path, WorkerList).workers
    workers.sort(key=lambda w: (w.runtime_id, w.created_at))
    rows = [
        [
            f"{w.runtime_id}/{w.worker_id}",
            w.display_ref,
            w.profile,
            w.state.value,
            age(w.created_at),
        ]
        for w in workers
    ]
    typer.echo(table(["WORKER", "NAME", "PROFILE", "STATE", "AGE"], rows))
    for skipped in unavailable:
        typer.echo(f"yoi: runtime {skipped} did not answer; its workers are not listed", err=True)


def create(target: Target, runtime_id: str, name: str, profile: str | None) -> None:
    if not is_display_name(name):
        raise CliFailure(f"{name!r} is not a valid name (letters, digits, _ . -)", USAGE)
    body: dict[str, Any] = {"display_name": name}
    if profile is not None:
        body["profile"] = profile
    with GatewayClient(target) as client:
        worker = client.post(f"/api/runtimes/{_runtime(runtime_id)}/workers", WorkerDetail, body)
    typer.echo(
        f"created {worker.runtime_id}/{worker.worker_id} "
        f"({worker.display_ref}, profile {worker.profile})"
    )


def send(
    target: Target, ref_text: str, text: str, *, strategy: str | None, input_id: str | None
) -> None:
    """Send the input, then stream its answer as it is generated, until its run finishes."""
    body: dict[str, Any] = {"text": text}
    if strategy is not None:
        body["strategy"] = strategy
    if input_id is not None:
        body["input_id"] = input_id
    with GatewayClient(target) as client:
        ref = resolve(client, ref_text)
        try:
            accepted = client.post(f"{ref.path}/inputs", InputAccepted, body)
        except ApiError as exc:
            if exc.code == "worker_busy":
                raise busy(ref_text) from exc
            raise
        try:
            _watch(client, ref, accepted)
        except KeyboardInterrupt:
            typer.echo(
                f"\nstopped watching; the answer goes on — `yoi cancel {ref_text}` stops it",
                err=True,
            )
            raise CliFailure("interrupted", INTERRUPTED) from None


def _watch(client: GatewayClient, ref: WorkerRef, accepted: InputAccepted) -> None:
    at_line_start = True
    error: str | None = None
    for event in client.follow(ref.runtime_id, ref.worker_id, accepted.cursor):
        if event.input_id != accepted.input_id:
            continue
        if event.type == "run_started" and event.attempt > 1:
            # The partial text above belonged to an abandoned attempt (its host was lost).
            note = f"[the worker's host was lost; answering again (attempt {event.attempt})]"
            typer.echo(("" if at_line_start else "\n") + note, err=True)
            at_line_start = True
        elif event.type == "text_delta" and event.text:
            typer.echo(event.text, nl=False)
            at_line_start = event.text.endswith("\n")
        elif event.type == "error":
            error = f"{event.message} ({event.code})"
        elif event.type == "run_finished":
            if not at_line_start:
                typer.echo()
            _raise_unless_finished(event.result, event.reason, error)
            return


def _raise_unless_finished(result: RunResult, reason: str | None, error: str | None) -> None:
    if result == RunResult.FINISHED:
        return
    why = error or reason
    detail = f": {why}" if why else ""
    words = {
        RunResult.CANCELLED: "was cancelled",
        RunResult.FAILED: "failed",
        RunResult.TIMED_OUT: "timed out",
    }
    raise CliFailure(f"the answer {words[result]}{detail}", FAILED)


def cancel(target: Target, ref_text: str) -> None:
    with GatewayClient(target) as client:
        ref = resolve(client, ref_text)
        outcome = client.post(f"{ref.path}/cancel", CancelResult)
    if outcome.cancelled:
        typer.echo(f"cancelled the answer of {ref_text}")
    else:
        typer.echo(f"nothing to cancel: {ref_text} is {outcome.state.value}")


def tail(target: Target, ref_text: str, *, after: str | None, follow: bool) -> None:
    """Events after a cursor, one line each; `follow` long-polls for new ones until Ctrl-C."""
    with GatewayClient(target) as client:
        ref = resolve(client, ref_text)
        try:
            for event in _pages(client, ref, after, follow):
                typer.echo(event_line(event))
        except KeyboardInterrupt:
            raise CliFailure("interrupted", INTERRUPTED) from None


def _pages(
    client: GatewayClient, ref: WorkerRef, after: str | None, follow: bool
) -> Iterator[Event]:
    cursor = after
    wait_ms = LONG_POLL_WAIT_MS if follow else 0
    while True:
        params: dict[str, str | int] = {"limit": PAGE_LIMIT, "wait_ms": wait_ms}
        if cursor is not None:
            params["after"] = cursor
        page = client.get(f"{ref.path}/events", EventPage, params, timeout_s=wait_ms / 1000 + 10)
        events: list[Event] = page.events
        yield from events
        cursor = page.cursor
        if not follow and len(events) < PAGE_LIMIT:
            return


def transcript(target: Target, ref_text: str, *, limit: int, before: str | None) -> None:
    params: dict[str, str | int] = {"limit": limit}
    if before is not None:
        params["before"] = before
    with GatewayClient(target) as client:
        ref = resolve(client, ref_text)
        page = client.get(f"{ref.path}/transcript", TranscriptPage, params)
    for entry in page.entries:
        typer.echo(transcript_line(entry))
    if page.next_before is not None:
        typer.echo(f"(older entries: --before {page.next_before})", err=True)


def _runtime(runtime_id: str) -> str:
    if not is_runtime_id(runtime_id):
        raise CliFailure(f"{runtime_id!r} is not a runtime id (`yoi runtimes` lists them)", USAGE)
    return runtime_id
