"""Commands for a Worker's schedules, through the SDK: schedule (at a time or on a cron),
schedules (the list), unschedule."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from gateway.cli.client import connect, target_of
from gateway.cli.errors import USAGE, CliFailure
from gateway.cli.options import Json, Ref
from gateway.cli.refs import resolve
from gateway.cli.render import json_line, safe, table
from shared.schedules import Schedule, ScheduleList

TEXT_COLUMN = 40


def schedule(
    ctx: typer.Context,
    ref: Ref,
    text: Annotated[str, typer.Argument(help="The input to send.")],
    at: Annotated[
        str | None,
        typer.Option(help="Once, at this ISO 8601 time with its offset (2030-01-07T09:00Z)."),
    ] = None,
    cron: Annotated[
        str | None,
        typer.Option(help="On a cron: five fields ('0 9 * * mon-fri') or an alias ('@daily')."),
    ] = None,
    timezone: Annotated[
        str | None, typer.Option(help="The IANA timezone the cron is read in (default UTC).")
    ] = None,
    as_json: Json = False,
) -> None:
    """Schedule an input: once (--at) or on a cron (--cron [--timezone])."""
    if (at is None) == (cron is None):
        raise CliFailure("give exactly one of --at and --cron", USAGE)
    if timezone is not None and cron is None:
        raise CliFailure("--timezone goes with --cron (an --at time carries its offset)", USAGE)
    with connect(target_of(ctx)) as client:
        worker = resolve(client, ref)
        made = client.create_schedule(
            worker.runtime_id, worker.worker_id, text, at=at, cron=cron, timezone=timezone
        )
    if as_json:
        typer.echo(json_line(made))
        return
    typer.echo(safe(f"scheduled {made.schedule_id} ({_when(made)}), next {_time(made)}"))


def schedules(ctx: typer.Context, ref: Ref, as_json: Json = False) -> None:
    """List a Worker's schedules, with when each fires next."""
    with connect(target_of(ctx)) as client:
        worker = resolve(client, ref)
        found = client.list_schedules(worker.runtime_id, worker.worker_id)
    if as_json:
        typer.echo(json_line(ScheduleList(schedules=found)))
        return
    rows = [[s.schedule_id, _when(s), _time(s), _short(s.text)] for s in found]
    typer.echo(table(["SCHEDULE", "WHEN", "NEXT", "TEXT"], rows))


def unschedule(
    ctx: typer.Context,
    ref: Ref,
    schedule_id: Annotated[str, typer.Argument(metavar="SCHEDULE_ID")],
) -> None:
    """Delete a schedule: it fires no more."""
    with connect(target_of(ctx)) as client:
        worker = resolve(client, ref)
        client.delete_schedule(worker.runtime_id, worker.worker_id, schedule_id)
    typer.echo(safe(f"unscheduled {schedule_id}"))


def _when(item: Schedule) -> str:
    if item.at is not None:
        return f"at {item.at.isoformat()}"
    return f"cron {item.cron} {item.timezone}"


def _time(item: Schedule) -> str:
    return datetime.fromtimestamp(item.next_fire_at, UTC).isoformat(timespec="seconds")


def _short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TEXT_COLUMN else line[: TEXT_COLUMN - 1] + "…"
