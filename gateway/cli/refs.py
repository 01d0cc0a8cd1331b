"""Worker references on the command line: the authority `runtime_id/worker_id`, or `name@runtime`.

A display ref is for people: it is resolved once, to the oldest live Worker of that name, and
every request after that uses the ids (SPEC section 1: names never route).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.cli.errors import NOT_FOUND, USAGE, CliFailure
from gateway.client import Client
from shared.ids import is_display_name, is_runtime_id, is_worker_id
from shared.models import LIVE_STATES, WorkerSummary
from shared.settings import EMBEDDED_RUNTIME_ID

COMPANION_NAME = "companion"


@dataclass(frozen=True)
class RefSpec:
    """What the person typed, parsed: either ids or a display name, always a runtime."""

    text: str
    runtime_id: str
    worker_id: str | None = None
    display_name: str | None = None


@dataclass(frozen=True)
class WorkerRef:
    runtime_id: str
    worker_id: str
    text: str  # as typed, for messages


def parse_ref(text: str, *, default_runtime: str | None = None) -> RefSpec:
    """`rid/wid`, `name@rid`, or (with `default_runtime`) a bare worker id; else a usage error."""
    if "/" in text:
        runtime_id, _, worker_id = text.partition("/")
        if is_runtime_id(runtime_id) and is_worker_id(worker_id):
            return RefSpec(text, runtime_id, worker_id=worker_id)
    elif "@" in text:
        name, _, runtime_id = text.rpartition("@")
        if is_runtime_id(runtime_id) and is_display_name(name):
            return RefSpec(text, runtime_id, display_name=name)
    elif default_runtime is not None and is_worker_id(text):
        return RefSpec(text, default_runtime, worker_id=text)
    raise CliFailure(
        f"{text!r} is not a worker reference: use RUNTIME/WORKER_ID or NAME@RUNTIME "
        "(`yoi workers` lists both)",
        USAGE,
    )


def oldest_live(workers: list[WorkerSummary], name: str) -> WorkerSummary | None:
    live = [w for w in workers if w.display_name == name and w.state in LIVE_STATES]
    return min(live, key=lambda w: w.created_at, default=None)


def resolve(client: Client, text: str) -> WorkerRef:
    """Ids as they are; a display ref through the runtime's worker list (the Companion is
    created on first use, as the console does)."""
    spec = parse_ref(text)
    if spec.worker_id is not None:
        return WorkerRef(spec.runtime_id, spec.worker_id, text)
    assert spec.display_name is not None
    found = oldest_live(client.list_workers(spec.runtime_id), spec.display_name)
    if found is not None:
        return WorkerRef(spec.runtime_id, found.worker_id, text)
    if spec.runtime_id == EMBEDDED_RUNTIME_ID and spec.display_name == COMPANION_NAME:
        companion = client.companion()
        return WorkerRef(companion.runtime_id, companion.worker_id, text)
    raise CliFailure(
        f"no live worker named {spec.display_name!r} on runtime {spec.runtime_id!r} "
        f"— `yoi workers {spec.runtime_id}` lists them",
        NOT_FOUND,
    )
