"""Commands that read and create through the gateway: runtimes, workers, create, transcript."""

from __future__ import annotations

from typing import Annotated

import typer

from gateway.cli.client import connect, target_of
from gateway.cli.errors import USAGE, CliFailure
from gateway.cli.options import Json, Ref
from gateway.cli.refs import resolve
from gateway.cli.render import age, json_line, safe, table, transcript_line
from shared.api import AllWorkers, RuntimeList
from shared.ids import is_display_name, is_runtime_id
from shared.models import MAX_CREATE_BATCH, CreateWorker, WorkerSummary


def runtimes(ctx: typer.Context, as_json: Json = False) -> None:
    """List the runtimes."""
    with connect(target_of(ctx)) as client:
        listing = RuntimeList(runtimes=client.list_runtimes())
    if as_json:
        typer.echo(json_line(listing))
        return
    rows = [[r.runtime_id, r.kind.value, r.status, str(r.workers)] for r in listing.runtimes]
    typer.echo(table(["RUNTIME", "KIND", "STATUS", "WORKERS"], rows))


def workers(
    ctx: typer.Context,
    runtime_id: Annotated[str | None, typer.Argument(help="Only this runtime's.")] = None,
    as_json: Json = False,
) -> None:
    """List the Workers (of every runtime, or of one)."""
    unavailable: list[str] = []
    with connect(target_of(ctx)) as client:
        if runtime_id is None:
            listing = client.all_workers()
            found, unavailable = listing.workers, listing.unavailable
        else:
            found = client.list_workers(_runtime(runtime_id))
    found.sort(key=lambda w: (w.runtime_id, w.created_at))
    if as_json:
        typer.echo(json_line(AllWorkers(workers=found, unavailable=unavailable)))
    else:
        typer.echo(table(["WORKER", "NAME", "PROFILE", "STATE", "AGE"], _rows(found)))
    for skipped in unavailable:
        typer.echo(
            f"yoi: runtime {safe(skipped)} did not answer; its workers are not listed", err=True
        )


def _rows(found: list[WorkerSummary]) -> list[list[str]]:
    return [
        [
            f"{w.runtime_id}/{w.worker_id}",
            w.display_ref,
            w.profile,
            w.state.value,
            age(w.created_at),
        ]
        for w in found
    ]


def create(
    ctx: typer.Context,
    runtime_id: Annotated[str, typer.Argument(metavar="RUNTIME")],
    names: Annotated[
        list[str], typer.Argument(metavar="NAME...", help="Display names: one Worker each.")
    ],
    profile: Annotated[str | None, typer.Option(help="Profile (default: the runtime's).")] = None,
    as_json: Json = False,
) -> None:
    """Create Workers on a runtime: one, or several names as batch creates (up to 1,000 a
    request; a refused request creates none of its Workers)."""
    for name in names:
        if not is_display_name(name):
            raise CliFailure(f"{name!r} is not a valid name (letters, digits, _ . -)", USAGE)
    runtime = _runtime(runtime_id)
    with connect(target_of(ctx)) as client:
        if len(names) == 1:
            made = [client.create_worker(runtime, names[0], profile=profile)]
        else:
            made = []
            for start in range(0, len(names), MAX_CREATE_BATCH):
                part = names[start : start + MAX_CREATE_BATCH]
                items = [CreateWorker(display_name=name, profile=profile) for name in part]
                made += client.create_workers(runtime, items)
    for worker in made:
        if as_json:
            typer.echo(json_line(worker))
            continue
        typer.echo(
            safe(
                f"created {worker.runtime_id}/{worker.worker_id} "
                f"({worker.display_ref}, profile {worker.profile})"
            )
        )


def transcript(
    ctx: typer.Context,
    ref: Ref,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Most entries to show.")] = 50,
    before: Annotated[str | None, typer.Option(help="Entries before this cursor.")] = None,
    as_json: Json = False,
) -> None:
    """Print the Worker's transcript (oldest first)."""
    with connect(target_of(ctx)) as client:
        worker = resolve(client, ref)
        page = client.transcript(worker.runtime_id, worker.worker_id, limit=limit, before=before)
    if as_json:
        typer.echo(json_line(page))
        return
    for entry in page.entries:
        typer.echo(transcript_line(entry))
    if page.next_before is not None:
        typer.echo(f"(older entries: --before {safe(page.next_before)})", err=True)


def _runtime(runtime_id: str) -> str:
    if not is_runtime_id(runtime_id):
        raise CliFailure(f"{runtime_id!r} is not a runtime id (`yoi runtimes` lists them)", USAGE)
    return runtime_id
