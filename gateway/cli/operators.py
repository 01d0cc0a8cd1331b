"""Operator commands: `yoi members`, `yoi drain MEMBER` and `yoi worker REF`, all through the
gateway's API (an operator needs no Redis access of their own)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from gateway.cli.client import connect, target_of
from gateway.cli.errors import FAILED, NOT_FOUND, USAGE, CliFailure
from gateway.cli.options import Json, Ref
from gateway.cli.refs import resolve
from gateway.cli.render import age, json_line, safe, table
from gateway.client import Client
from shared.ids import is_runtime_id
from shared.keys import is_member_key_part
from shared.models import MemberInfo, RuntimeKind

DRAIN_POLL_S = 0.25


def _state(member: MemberInfo) -> str:
    if not member.alive:
        return "dead"
    return "draining" if member.draining else "alive"


def _heartbeat(member: MemberInfo) -> str:
    if member.heartbeat_age_ms is None:
        return "-"
    return f"{member.heartbeat_age_ms / 1000:.1f}s ago"


def _fleet_members(client: Client, runtime_id: str | None) -> list[tuple[str, MemberInfo]]:
    """(runtime id, member) of every fleet runtime, or of the one named."""
    if runtime_id is not None:
        if not is_runtime_id(runtime_id):
            raise CliFailure(f"{runtime_id!r} is not a runtime id", USAGE)
        runtime_ids = [runtime_id]
    else:
        listed = client.list_runtimes()
        runtime_ids = [r.runtime_id for r in listed if r.kind is RuntimeKind.FLEET]
    found: list[tuple[str, MemberInfo]] = []
    for rid in runtime_ids:
        found.extend((rid, member) for member in client.members(rid))
    return found


def members(
    ctx: typer.Context,
    runtime_id: Annotated[str | None, typer.Argument(help="Only this runtime's.")] = None,
    as_json: Json = False,
) -> None:
    """List the runtime processes (members) of the fleet runtimes."""
    with connect(target_of(ctx)) as client:
        found = _fleet_members(client, runtime_id)
    if as_json:
        for rid, member in found:
            typer.echo(json_line({"runtime_id": rid, **member.model_dump(mode="json")}))
        return
    rows = [
        [m.member_id, rid, _state(m), str(m.capacity), str(m.hosted), _heartbeat(m)]
        for rid, m in found
    ]
    typer.echo(table(["MEMBER", "RUNTIME", "STATE", "CAPACITY", "HOSTED", "HEARTBEAT"], rows))


def drain(
    ctx: typer.Context,
    member_id: Annotated[str, typer.Argument(metavar="MEMBER", help="The member to drain.")],
    runtime_id: Annotated[
        str | None, typer.Option("--runtime", help="Its runtime (default: found by id).")
    ] = None,
    wait_s: Annotated[
        float,
        typer.Option("--wait", min=0, help="Seconds to wait until it hosts nothing (0: no wait)."),
    ] = 0,
) -> None:
    """Drain a member: it hands its Workers back (each once idle) and takes no new ones."""
    if not is_member_key_part(member_id):
        raise CliFailure(f"{member_id!r} is not a member id (`yoi members` lists them)", USAGE)
    with connect(target_of(ctx)) as client:
        owners = [rid for rid, m in _fleet_members(client, runtime_id) if m.member_id == member_id]
        if not owners:
            raise CliFailure(f"no member {member_id} (`yoi members` lists them)", NOT_FOUND)
        rid = owners[0]
        drained = client.drain_member(rid, member_id)
        typer.echo(safe(f"member {member_id} of {rid} drains ({drained.hosted} workers hosted)"))
        if wait_s > 0:
            _wait_empty(client, rid, member_id, wait_s)


def _wait_empty(client: Client, runtime_id: str, member_id: str, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        listed = client.members(runtime_id)
        member = next((m for m in listed if m.member_id == member_id), None)
        if member is None or member.hosted == 0:
            typer.echo(safe(f"member {member_id} hosts no workers"))
            return
        if time.monotonic() >= deadline:
            raise CliFailure(
                f"member {member_id} still hosts {member.hosted} workers after {wait_s:g}s", FAILED
            )
        time.sleep(DRAIN_POLL_S)


def worker(ctx: typer.Context, ref: Ref, as_json: Json = False) -> None:
    """Show one Worker: state, host, epoch, queue depth and usage."""
    with connect(target_of(ctx)) as client:
        found = resolve(client, ref)
        detail = client.get_worker(found.runtime_id, found.worker_id)
    if as_json:
        typer.echo(json_line(detail))
        return
    usage, diag = detail.usage, detail.diagnostics
    lines = [
        ("worker", f"{detail.runtime_id}/{detail.worker_id}"),
        ("name", detail.display_ref),
        ("profile", detail.profile),
        ("state", detail.state.value),
        ("kind", diag.kind.value),
        ("host", diag.host or "-"),
        ("epoch", str(diag.epoch)),
        ("queue", str(diag.queue_depth)),
        ("tokens", f"{usage.input_tokens} in / {usage.output_tokens} out"),
        ("runs", _runs(usage.runs, usage.runs_by_result)),
        ("last error", usage.last_error or "-"),
        ("age", age(detail.created_at)),
    ]
    if detail.in_flight is not None:
        lines.append(("running", f"{detail.in_flight.run_id} (attempt {detail.in_flight.attempt})"))
    width = max(len(name) for name, _ in lines)
    for name, value in lines:
        typer.echo(safe(f"{name.ljust(width)}  {value}"))


def _runs(total: int, by_result: dict[str, int]) -> str:
    if not by_result:
        return str(total)
    parts = ", ".join(f"{count} {result}" for result, count in sorted(by_result.items()))
    return f"{total} ({parts})"
