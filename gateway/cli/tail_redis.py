"""`yoi tail --redis-url`: follow a Worker's event stream straight from Redis, as an operator.

No gateway in the way: XREAD on the Worker's events stream (key from `shared.keys`, the one
module that builds keys). Each entry holds one field whose value is the event's JSON; its
cursor is the entry id.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import typer
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.cli.errors import (
    EXIT_BY_API_CODE,
    FAILED,
    INTERRUPTED,
    NOT_FOUND,
    UNREACHABLE,
    USAGE,
    CliFailure,
)
from gateway.cli.refs import parse_ref
from gateway.cli.render import event_line, safe
from runtime_worker.store._redis_client import Client, is_cluster, make_client
from shared.errors import RuntimeUnavailable, YoiError
from shared.events import Event, parse_stored
from shared.keys import Keys
from shared.settings import EMBEDDED_RUNTIME_ID, Settings

BLOCK_MS = 5_000
PROBE_TIMEOUT_S = 2.0
BATCH = 1_000


def tail_redis(
    settings: Settings,
    ref_text: str,
    *,
    runtime_id: str | None,
    after: str | None,
    follow: bool,
    show: Callable[[Event], str] = event_line,
) -> None:
    spec = parse_ref(ref_text, default_runtime=runtime_id)
    if spec.runtime_id == EMBEDDED_RUNTIME_ID:
        raise CliFailure(
            f"{EMBEDDED_RUNTIME_ID} lives inside the gateway, not in Redis: tail it without "
            "--redis-url",
            NOT_FOUND,
        )
    try:
        asyncio.run(
            _tail(settings, spec.runtime_id, spec.worker_id, spec.display_name, after, follow, show)
        )
    except KeyboardInterrupt:
        raise CliFailure("interrupted", INTERRUPTED) from None


async def _tail(
    settings: Settings,
    runtime_id: str,
    worker_id: str | None,
    display_name: str | None,
    after: str | None,
    follow: bool,
    show: Callable[[Event], str],
) -> None:
    if worker_id is None:
        assert display_name is not None
        worker_id = await _find(settings, runtime_id, display_name)
    assert settings.redis_url is not None
    keys = Keys(settings.namespace, runtime_id)
    # One server or a cluster, as the server says (`YOI_REDIS_CLUSTER` forces it).
    cluster = is_cluster(settings.redis_url, settings.redis_cluster, PROBE_TIMEOUT_S)
    client = make_client(settings.redis_url, cluster=cluster, decode_responses=True)
    try:
        if not await client.exists(keys.record(worker_id)):
            raise CliFailure(
                f"no worker {runtime_id}/{worker_id} in namespace {settings.namespace!r} "
                "(check --namespace)",
                NOT_FOUND,
            )
        events = _read(client, worker_id, keys.events(worker_id), after or "0-0", follow)
        async for event in events:
            typer.echo(show(event))
    except ResponseError as exc:  # e.g. a malformed --after: Redis names the problem
        raise CliFailure(f"Redis refused the read: {safe(str(exc))}", USAGE) from exc
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise CliFailure(f"cannot reach Redis: {type(exc).__name__}", UNREACHABLE) from exc
    finally:
        await client.aclose()


async def _read(
    client: Client, worker_id: str, key: str, cursor: str, follow: bool
) -> AsyncIterator[Event]:
    while True:
        block = BLOCK_MS if follow else None
        answer = await client.xread({key: cursor}, count=BATCH, block=block)
        entries = answer[0][1] if answer else []
        for entry_id, fields in entries:
            cursor = entry_id
            event = _event(worker_id, entry_id, fields)
            if event is not None:
                yield event
        if not follow and len(entries) < BATCH:
            return


def _event(worker_id: str, entry_id: str, fields: dict[str, str]) -> Event | None:
    """The entry's one JSON value as a typed event; None for a type this CLI predates."""
    if len(fields) != 1:
        return None
    (raw,) = fields.values()
    try:
        return parse_stored(raw, worker_id, entry_id)
    except ValidationError:
        return None


async def _find(settings: Settings, runtime_id: str, display_name: str) -> str:
    """Resolve `name@runtime` through the fleet runtime's own reader (no key layout here)."""
    from runtime_worker.runtime import Runtime

    runtime = Runtime.fleet(runtime_id, settings, role="cli")
    try:
        found = await runtime.find_worker(display_name)
    except RuntimeUnavailable as exc:
        raise CliFailure(f"cannot reach Redis: {exc.message}", UNREACHABLE) from exc
    except YoiError as exc:
        raise CliFailure(exc.message, EXIT_BY_API_CODE.get(exc.code, FAILED)) from exc
    finally:
        await runtime.aclose()
    if found is None:
        raise CliFailure(
            f"no live worker named {display_name!r} on runtime {runtime_id!r} "
            f"in namespace {settings.namespace!r}",
            NOT_FOUND,
        )
    return found.worker_id
