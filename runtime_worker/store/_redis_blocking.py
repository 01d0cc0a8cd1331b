"""Blocking stream reads (event waits, member doorbells) and rings, each wait bounded.

Blocking reads go through a client of their own (`blocking_client`) made without a socket
timeout: with one, redis-py writes every command under `asyncio.wait_for`, and on Python 3.11
`wait_for` drops a cancellation that arrives just as the write completes. The cancelled reader
then goes on blocking (and a follower loop goes on looping) with nobody left to read its answer:
Redis keeps a blocked client per such reader. Without the socket timeout the write is a plain
`drain()`, which a cancellation always interrupts, and every wait keeps a deadline of its own:
waits run in slices under an asyncio timeout.
On a Redis Cluster a read goes straight to its key's node: redis-py's cluster client would
first ask a node for XREAD's keys (`COMMAND GETKEYS`, XREAD's keys "move"), a round trip more
per wait and per wake-up.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis import exceptions as rex
from redis.asyncio import ConnectionPool, Redis, RedisCluster

from runtime_worker.store._redis_client import Client
from runtime_worker.store._scripts import answer
from runtime_worker.store.cursor import format_cursor
from shared.timeutil import monotonic_s, now_ms

SOCKET_TIMEOUT_S = 10.0
BLOCK_SLICE_MS = 5000
BELL_MAXLEN = 1000
BELL_LOOKBACK_MS = 10_000
"""`$` also reads hints this recent: hints are idempotent, and one rung while a member's reader
was starting is not missed."""

Entries = list[tuple[str, dict[str, str]]]


def blocking_client(client: Redis) -> Redis:
    """A client for blocking reads: `client`'s server and options, without its socket timeout,
    on a pool of its own (close it with `aclose(close_connection_pool=True)`)."""
    pool = client.connection_pool
    options = {**pool.connection_kwargs, "socket_timeout": None}
    own = ConnectionPool(
        connection_class=pool.connection_class, max_connections=pool.max_connections, **options
    )
    return Redis(connection_pool=own)


async def block_read(client: Client, key: str, after: str, count: int, timeout_ms: int) -> Entries:
    """XREAD after `after`, waiting up to `timeout_ms` (not at all when it is 0 or less)."""
    deadline = monotonic_s() + max(timeout_ms, 0) / 1000
    while True:
        remaining_ms = int((deadline - monotonic_s()) * 1000)
        block = min(remaining_ms, BLOCK_SLICE_MS) if remaining_ms >= 1 else None
        async with asyncio.timeout((block or 0) / 1000 + SOCKET_TIMEOUT_S):
            reply = await _xread(client, key, after, count, block)
        if reply:
            entries: Entries = reply[0][1]
            return entries
        if block is None or monotonic_s() >= deadline:
            return []


async def _xread(client: Client, key: str, after: str, count: int, block: int | None) -> Any:
    if not isinstance(client, RedisCluster):
        return await answer(client.xread({key: after}, count=count, block=block))
    await client.initialize()  # once: the slot map a node is looked up in
    node = client.nodes_manager.get_node_from_slot(client.keyslot(key))
    waits = [] if block is None else ["BLOCK", block]
    command = ["XREAD", "COUNT", count, *waits, "STREAMS", key, after]
    try:
        return await client.execute_command(*command, target_nodes=node)
    except rex.AskError:  # the slot moved (MOVED) or is moving (ASK): let redis-py follow it
        return await answer(client.xread({key: after}, count=count, block=block))


async def doorbell(
    client: Client, bell: str, last_id: str, timeout_ms: int
) -> tuple[list[str], str]:
    """Worker ids rung after `last_id` (deduplicated, in order) and the id to read on from."""
    if last_id in ("$", ""):
        last_id = format_cursor((max(now_ms() - BELL_LOOKBACK_MS, 0), 0))
    entries = await block_read(client, bell, last_id, BELL_MAXLEN, timeout_ms)
    if not entries:
        return [], last_id
    worker_ids = [fields["w"] for _, fields in entries if "w" in fields]
    return list(dict.fromkeys(worker_ids)), entries[-1][0]
