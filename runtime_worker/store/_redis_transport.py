"""Batches of packed commands on the wire, to one server or to the nodes of a Redis Cluster.

A batch is written at once per connection and its replies read in order: a pipeline without
redis-py's per-command cost. Each command travels with the key that routes it. On one server the
whole batch goes on one pooled connection; on a cluster it is cut by node (each key's slot's
primary), the parts sent side by side, and a reply that says the slot moved (`MOVED`: the slot
map is read again; `ASK`: that one command goes to the importing node after `ASKING`) or that
the slot is busy (`TRYAGAIN`) is sent again, a bounded number of times. What still fails is left
in its place for the caller (mapped to a retryable `RuntimeUnavailable` by `translate_errors`).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from typing import Any

from redis import exceptions as rex
from redis.asyncio import ConnectionPool, Redis, RedisCluster

from runtime_worker.store._redis_client import CLUSTER_PARSER, Client, closed_under_write

CHUNK = 1000
"""Commands per write: one write and one round trip each, and a bounded reply to hold."""
REDIRECT_ROUNDS = 4
"""Sends of one command at most while slots move: a migration or failover in progress ends
within a few rounds, or the caller gets a retryable error."""
TRYAGAIN_DELAY_S = 0.05
REPLICA_WAIT_MS = 500
"""How long a replicated write waits for a replica's acknowledgement (`WAIT 1`)."""
_WAIT = b"*3\r\n$4\r\nWAIT\r\n$1\r\n1\r\n$3\r\n500\r\n"  # WAIT 1 REPLICA_WAIT_MS
_NOT_REPLICATED = "NOREPLICAS no replica acknowledged the write in time"

Routed = tuple[str, bytes]
"""A packed command and the key that routes it on a cluster."""
Route = tuple[str, bool]
"""Where a cluster sends a key's commands: its slot's primary, and whether that slot has a
replica (a replicated write waits for one there)."""
SLOT_CACHE = 1 << 16
"""Keys whose slot is remembered (redis-py computes it in Python, ~1.2 µs a key, and the hot
keys are few per Worker); the cache starts over when full."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _takes_command_name() -> bool:
    parameter = inspect.signature(ConnectionPool.get_connection).parameters.get("command_name")
    return parameter is not None and parameter.default is inspect.Parameter.empty


_NAMED_GET = _takes_command_name()  # redis-py < 5.3 wants a command name; later ones warn


async def _send_on(pool: ConnectionPool, commands: Sequence[bytes]) -> list[Any]:
    """The replies of commands sent on one pooled connection, chunk by chunk. An error reply is
    returned in its place; losing the connection (or being cancelled) mid-batch discards the
    connection, so no reply is ever read by the wrong caller."""
    replies: list[Any] = []
    for start in range(0, len(commands), CHUNK):
        chunk = commands[start : start + CHUNK]
        conn = await (pool.get_connection("PIPELINE") if _NAMED_GET else pool.get_connection())
        try:
            await conn.send_packed_command(b"".join(chunk))
            for _ in chunk:
                try:
                    replies.append(await conn.read_response())
                except rex.ResponseError as exc:  # read whole: the connection stays in step
                    replies.append(exc)
        except BaseException as exc:
            await conn.disconnect()
            if closed_under_write(exc):
                raise rex.ConnectionError("the connection closed under a write") from None
            raise
        finally:
            await pool.release(conn)
    return replies


class Transport:
    """How a store's batches reach Redis; `client` is the redis-py client for everything else
    (its commands route themselves)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.cluster = isinstance(client, RedisCluster)
        self._pools: dict[str, ConnectionPool] = {}  # cluster: one pool per node, by name
        self._stale = False
        self._slots: dict[str, int] = {}

    def node_name(self, key: str) -> str:
        """The node `key` goes to by the slot map known now: "" on one server, or while the map
        is not read yet (a batch routes itself in any case: this only picks a lane)."""
        return self.route(key)[0]

    def route(self, key: str) -> Route:
        """`key`'s node and whether its slot has a replica, by the slot map known now (`("",
        False)` on one server or before the map is read). A batch of one route may be sent
        with it (`send(route=…)`): if the map changed meanwhile, MOVED sends it again."""
        client = self.client
        if isinstance(client, Redis) or not client.nodes_manager.slots_cache:
            return "", False
        slot = self.slot(key)
        try:
            node = client.nodes_manager.get_node_from_slot(slot)
        except (rex.SlotNotCoveredError, IndexError):
            return "", False
        return str(node.name), len(client.nodes_manager.slots_cache.get(slot, ())) > 1

    def slot(self, key: str) -> int:
        """The cluster slot of `key`; 0 on one server, where every key may share a script."""
        client = self.client
        if not isinstance(client, RedisCluster):
            return 0
        slot = self._slots.get(key)
        if slot is None:
            if len(self._slots) >= SLOT_CACHE:
                self._slots.clear()
            slot = self._slots[key] = client.keyslot(key)
        return slot

    async def send(
        self, commands: Sequence[Routed], *, replicated: bool = False, route: Route | None = None
    ) -> list[Any]:
        """The replies of `commands`, in order, an error reply in its place. `replicated`: on
        a cluster node that has replicas, the writes count only once a replica acknowledged
        them (`WAIT 1`), so a failover does not lose them; unacknowledged, each reply of that
        node is a retryable NOREPLICAS error (the write itself may survive, or not). `route`:
        every command's, looked up already by the caller (`route()`), for the first round."""
        client = self.client
        if isinstance(client, Redis):
            return await _send_on(client.connection_pool, [data for _, data in commands])
        await client.initialize()
        if self._stale:
            self._stale = False
            await client.nodes_manager.initialize()
        replies: list[Any] = [None] * len(commands)
        todo = list(range(len(commands)))
        for round_ in range(REDIRECT_ROUNDS):
            if round_ == 0 and route is not None and route[0]:
                name, has_replica = route
                groups, waits = {name: todo}, {name} if replicated and has_replica else set()
            else:
                groups, waits = self._by_node(client, commands, todo, replicated)
            parts = await self._round(groups, waits, commands)
            todo, moved = [], False
            for indexes, got in zip(groups.values(), parts, strict=True):
                for index, reply in zip(indexes, got, strict=True):
                    replies[index] = reply
                    if isinstance(reply, rex.MovedError):
                        moved = True
                        todo.append(index)
                    elif isinstance(reply, rex.AskError):
                        replies[index] = await self._ask(reply, commands[index][1])
                    elif isinstance(reply, rex.TryAgainError):
                        todo.append(index)
            if not todo or round_ == REDIRECT_ROUNDS - 1:
                break
            if moved:  # the slot map changed (resharding, failover): read it again
                await client.nodes_manager.initialize()
            else:
                await asyncio.sleep(TRYAGAIN_DELAY_S)  # backoff: a slot being migrated
        return replies

    async def _round(
        self, groups: dict[str, list[int]], waits: set[str], commands: Sequence[Routed]
    ) -> list[list[Any]]:
        """Each node's part sent side by side; a node that fails fails its own commands only
        (its error in their place), the others' replies stand."""
        if len(groups) == 1:  # one node (a lone call, mostly): no task to make for it
            ((name, indexes),) = groups.items()
            try:
                return [
                    await self._node_send(name, [commands[i][1] for i in indexes], wait=bool(waits))
                ]
            except Exception as exc:
                return [[exc] * len(indexes)]
        parts = await asyncio.gather(
            *(
                self._node_send(name, [commands[i][1] for i in idx], wait=name in waits)
                for name, idx in groups.items()
            ),
            return_exceptions=True,
        )
        replies: list[list[Any]] = []
        for indexes, got in zip(groups.values(), parts, strict=True):
            if isinstance(got, BaseException):
                if not isinstance(got, Exception):
                    raise got  # cancelled: the whole call is
                got = [got] * len(indexes)
            replies.append(got)
        return replies

    def _by_node(
        self,
        client: RedisCluster,
        commands: Sequence[Routed],
        todo: Sequence[int],
        replicated: bool,
    ) -> tuple[dict[str, list[int]], set[str]]:
        """Command indexes by the node of their slot's primary, and the nodes among those whose
        slot has replicas (where a replicated write waits for one)."""
        manager = client.nodes_manager
        groups: dict[str, list[int]] = {}
        waits: set[str] = set()
        for index in todo:
            slot = self.slot(commands[index][0])
            node = manager.get_node_from_slot(slot)
            groups.setdefault(node.name, []).append(index)
            if replicated and len(manager.slots_cache.get(slot, ())) > 1:
                waits.add(node.name)
        return groups, waits

    async def _ask(self, redirect: rex.AskError, command: bytes) -> Any:
        """One command sent where a slot being migrated has its key now, after ASKING."""
        asking = b"*1\r\n$6\r\nASKING\r\n"
        _, reply = await self._node_send(f"{redirect.host}:{redirect.port}", [asking, command])
        return reply

    async def _node_send(
        self, name: str, commands: Sequence[bytes], *, wait: bool = False
    ) -> list[Any]:
        try:
            if not wait:
                return await _send_on(self._pool(name), commands)
            # WAIT vouches for the writes of its own connection: one per chunk, in the chunk.
            replies: list[Any] = []
            for start in range(0, len(commands), CHUNK - 1):
                *got, acked = await _send_on(
                    self._pool(name), [*commands[start : start + CHUNK - 1], _WAIT]
                )
                if not (isinstance(acked, int) and acked >= 1):
                    got = [rex.ResponseError(_NOT_REPLICATED) for _ in got]
                replies += got
            return replies
        except (rex.ConnectionError, rex.TimeoutError, OSError):
            self._stale = True  # the node may have failed over: read the slot map next time
            raise

    def _pool(self, name: str) -> ConnectionPool:
        pool = self._pools.get(name)
        if pool is None:
            assert isinstance(self.client, RedisCluster)
            node = self.client.get_node(node_name=name)
            if node is None:  # an ASK to a node the map does not list yet
                host, _, port = name.rpartition(":")
                template = self.client.get_default_node()
                kwargs = {**template.connection_kwargs, "host": host, "port": int(port)}
                connection_class = template.connection_class
            else:
                kwargs, connection_class = dict(node.connection_kwargs), node.connection_class
            if CLUSTER_PARSER is not None:  # the cheap readiness check (`_redis_client`)
                kwargs["parser_class"] = CLUSTER_PARSER
            pool = self._pools[name] = ConnectionPool(connection_class=connection_class, **kwargs)
        return pool

    async def load(self, text: str, keys: Sequence[str] = ()) -> str:
        """Load a script where it runs: the server; on a cluster the nodes of `keys` (those
        that answered NOSCRIPT for them: a node that is away holds back no other node's
        calls), or every primary when no key is given."""
        if not self.cluster or not keys:
            sha: str = await self.client.script_load(text)
            return sha
        raw = text.encode()
        data = b"*3\r\n$6\r\nSCRIPT\r\n$4\r\nLOAD\r\n$%d\r\n%s\r\n" % (len(raw), raw)
        one_per_node = {self.node_name(key) or key: key for key in keys}
        replies = await self.send([(key, data) for key in one_per_node.values()])
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return _text(replies[0])

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        await asyncio.gather(*(pool.aclose() for pool in pools), return_exceptions=True)
