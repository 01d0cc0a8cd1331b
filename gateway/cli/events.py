"""`yoi tail`: a Worker's events, one line each, through the gateway or straight from Redis."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import typer

from gateway.cli.client import connect, target_of
from gateway.cli.errors import INTERRUPTED, USAGE, CliFailure
from gateway.cli.options import Json, Ref
from gateway.cli.refs import WorkerRef, resolve
from gateway.cli.render import event_line, json_line
from gateway.client import Client
from shared.events import Event
from shared.settings import InvalidSettings, load_settings

PAGE_LIMIT = 1000
LONG_POLL_WAIT_MS = 25_000


def tail(
    ctx: typer.Context,
    ref: Ref,
    after: Annotated[
        str | None, typer.Option(help="Start after this cursor (default: the oldest kept).")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events.")
    ] = False,
    redis_url: Annotated[
        str | None,
        typer.Option(help="Read the events stream straight from Redis instead of the gateway."),
    ] = None,
    namespace: Annotated[str | None, typer.Option(help="Key namespace (with --redis-url).")] = None,
    runtime_id: Annotated[
        str | None, typer.Option(help="Runtime of a bare worker id REF (with --redis-url).")
    ] = None,
    as_json: Json = False,
) -> None:
    """Print a Worker's events, one line each: cursor, type, payload (--json: the event)."""
    show = json_line if as_json else event_line
    if redis_url is None:
        if namespace is not None or runtime_id is not None:
            raise CliFailure("--namespace and --runtime-id go with --redis-url", USAGE)
        with connect(target_of(ctx)) as client:
            worker = resolve(client, ref)
            try:
                for event in _pages(client, worker, after, follow):
                    typer.echo(show(event))
            except KeyboardInterrupt:
                raise CliFailure("interrupted", INTERRUPTED) from None
        return
    from gateway.cli.tail_redis import tail_redis

    try:
        settings = load_settings(redis_url=redis_url, namespace=namespace)
    except InvalidSettings as exc:
        raise CliFailure(str(exc), USAGE) from None
    tail_redis(settings, ref, runtime_id=runtime_id, after=after, follow=follow, show=show)


def _pages(client: Client, worker: WorkerRef, after: str | None, follow: bool) -> Iterator[Event]:
    """Events after a cursor, page by page; `follow` long-polls for new ones until Ctrl-C."""
    cursor = after
    wait_ms = LONG_POLL_WAIT_MS if follow else 0
    while True:
        page = client.events(
            worker.runtime_id, worker.worker_id, after=cursor, limit=PAGE_LIMIT, wait_ms=wait_ms
        )
        events: list[Event] = page.events
        yield from events
        cursor = page.cursor
        if not follow and len(events) < PAGE_LIMIT:
            return
