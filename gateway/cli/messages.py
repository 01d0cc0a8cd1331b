"""Commands that talk to a Worker through the gateway: send (streams the answer), cancel."""

from __future__ import annotations

from typing import Annotated

import typer

from gateway.cli.client import connect, target_of
from gateway.cli.errors import FAILED, INTERRUPTED, CliFailure, busy
from gateway.cli.options import Json, Ref
from gateway.cli.refs import resolve
from gateway.cli.render import json_line, safe
from gateway.client import AnswerStream, WorkerBusy
from shared.models import RunResult, Strategy


def send(
    ctx: typer.Context,
    ref: Ref,
    text: Annotated[str, typer.Argument(help="The message.")],
    strategy: Annotated[
        Strategy | None, typer.Option(help="When the worker is busy (default: its profile's).")
    ] = None,
    input_id: Annotated[str | None, typer.Option(help="Idempotency key.")] = None,
    as_json: Json = False,
) -> None:
    """Send a message and stream the answer as it is generated.

    A dropped stream reconnects from the last event it printed (Last-Event-ID), so the answer
    prints once, whole."""
    with connect(target_of(ctx)) as client:
        worker = resolve(client, ref)
        try:
            answer = client.send_and_stream(
                worker.runtime_id, worker.worker_id, text, input_id=input_id, strategy=strategy
            )
        except WorkerBusy as exc:
            raise busy(ref) from exc
        try:
            _watch(answer, as_json=as_json)
        except KeyboardInterrupt:
            typer.echo(
                f"\nstopped watching; the answer goes on — `yoi cancel {safe(ref)}` stops it",
                err=True,
            )
            raise CliFailure("interrupted", INTERRUPTED) from None


def _watch(answer: AnswerStream, *, as_json: bool) -> None:
    """Print the answer as it streams (the SDK resumes a dropped stream from its cursor)."""
    at_line_start = True
    for event in answer:
        if as_json:
            typer.echo(json_line(event))
        elif event.type == "run_started" and event.attempt > 1:
            # The partial text above belonged to an abandoned attempt (its host was lost).
            note = f"[the worker's host was lost; answering again (attempt {event.attempt})]"
            typer.echo(("" if at_line_start else "\n") + note, err=True)
            at_line_start = True
        elif event.type == "text_delta" and event.text:
            typer.echo(safe(event.text, multiline=True), nl=False)
            at_line_start = event.text.endswith("\n")
        if event.type == "run_finished":
            if not at_line_start and not as_json:
                typer.echo()
            errors = answer.answer.errors
            _raise_unless_finished(event.result, event.reason, errors[-1] if errors else None)
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


def cancel(ctx: typer.Context, ref: Ref, as_json: Json = False) -> None:
    """Cancel the Worker's current answer."""
    with connect(target_of(ctx)) as client:
        worker = resolve(client, ref)
        outcome = client.cancel(worker.runtime_id, worker.worker_id)
    if as_json:
        typer.echo(json_line(outcome))
    elif outcome.cancelled:
        typer.echo(f"cancelled the answer of {safe(ref)}")
    else:
        typer.echo(f"nothing to cancel: {safe(ref)} is {outcome.state.value}")
