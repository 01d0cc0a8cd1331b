"""The asyncio Redis client `RedisStore.from_url` makes: one server or a Redis Cluster, as the
server itself says (`INFO cluster`), and redis-py with a cheaper readiness check.

Before every command redis-py's pool checks that the connection it hands out holds no stray
reply (`can_read_destructive`). With hiredis (a dependency, through arq) that check is a socket
read under a zero timeout: a timer, a cancellation and one more pass of the event loop per
command, on every hop of the input path. A connection whose reply went unread is disconnected by
redis-py itself (a cancelled command drops its connection), so looking at what is already
buffered is as safe and costs nothing; redis-py adopted the same check upstream (pull request
4063). Where the parser's internals are not the expected ones, the stock check runs. A cluster's
batches (`_redis_transport`) get the same check on redis-py's cluster parser (which maps MOVED,
ASK and the like to their exceptions).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar, Literal

import redis as sync_redis
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import NodesManager

log = logging.getLogger("yoi.store.redis")

Client = Redis | RedisCluster
ClusterMode = Literal["auto", "on", "off"]


def _parser_class(cluster: bool = False) -> type[Any] | None:
    try:
        from redis._parsers import hiredis
        from redis.asyncio.cluster import ClusterParser
    except ImportError:  # pragma: no cover - another redis-py layout: keep its own parser
        return None
    hiredis_base: Any = getattr(hiredis, "_AsyncHiredisParser", None)
    not_enough_data = getattr(hiredis, "NOT_ENOUGH_DATA", None)
    if not getattr(hiredis, "HIREDIS_AVAILABLE", False) or hiredis_base is None:
        return None  # pragma: no cover - redis-py parses in Python here: keep its own parser
    base: Any = ClusterParser if cluster else hiredis_base
    if not_enough_data is None or not issubclass(base, hiredis_base):
        return None  # pragma: no cover - another redis-py layout: keep its own parser

    class BufferCheckParser(base):  # type: ignore[misc]
        async def can_read_destructive(self) -> bool:
            stream = getattr(self, "_stream", None)
            buffered = getattr(stream, "_buffer", None)
            if stream is None or buffered is None or not getattr(self, "_connected", False):
                return bool(await super().can_read_destructive())
            if self._reader.gets() is not not_enough_data:
                return True
            return bool(buffered) or bool(stream.at_eof())

    return BufferCheckParser


_PARSER = _parser_class()
CLUSTER_PARSER = _parser_class(cluster=True)
"""For the connections of a cluster's batches (`Transport`); None: keep redis-py's own."""

_CLOSED_UNDER_WRITE = "the handler is closed"


def closed_under_write(exc: BaseException) -> bool:
    """uvloop's answer to a write on a socket that closed under it (a node killed, a dropped
    connection redis-py had not noticed yet) is a `RuntimeError`: a lost connection all the
    same, not a bug."""
    return isinstance(exc, RuntimeError) and _CLOSED_UNDER_WRITE in str(exc)


def is_cluster(url: str, mode: ClusterMode, timeout_s: float) -> bool:
    """Whether `url` names a Redis Cluster node: forced by `mode`, else asked of the server
    (one `INFO cluster`, at start only). A server that does not answer is taken for one
    server, and said so: set `YOI_REDIS_CLUSTER=on` to start a member during a cluster outage."""
    if mode != "auto":
        return mode == "on"
    probe = sync_redis.Redis.from_url(
        url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
    )
    try:
        info: dict[str, Any] = probe.info("cluster")  # type: ignore[assignment]
    except (sync_redis.RedisError, OSError) as exc:
        log.warning(
            "Redis did not answer INFO cluster (%s): one server assumed", type(exc).__name__
        )
        return False
    finally:
        probe.close()
    return bool(int(info.get("cluster_enabled", 0)))


def make_client(url: str, *, cluster: bool = False, **options: Any) -> Client:
    """`Redis.from_url(url, **options)` with the cheap readiness check, or
    `RedisCluster.from_url` (whose nodes keep redis-py's own connections)."""
    if cluster:
        # Retries of its own would outlast a call's deadline: one attempt, errors mapped by us.
        made: RedisCluster = RedisCluster.from_url(url, cluster_error_retry_attempts=1, **options)
        _one_map_read_at_once(made)
        return made
    if _PARSER is not None:
        options.setdefault("parser_class", _PARSER)
    client: Redis = Redis.from_url(url, **options)
    return client


class _MapReads:
    """One manager's reads of the slot map: a lock, and how many reads completed."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.lock = asyncio.Lock()
        self.done = 0


MAP_READ_NODE_S = 1.0
"""How long one node may take to answer `CLUSTER SLOTS` in a map read before the read asks the
next one: the client has no socket timeout (see `RedisCore.from_url`), and a node that stopped
answering without refusing would otherwise hold the read, and every call waiting for the map
behind its lock, for good."""


class _Snapshots(dict[str, Any]):
    """A dict whose `values()` is a copy: a walk across awaits survives the dict changing. The
    walk is redis-py's map read, the only caller: each node in the copy answers it within
    `MAP_READ_NODE_S` or counts as unreachable."""

    def values(self) -> list[Any]:  # type: ignore[override]
        return [_BoundedRead(node) for node in super().values()]


class _BoundedRead:
    """A startup node whose commands give up after `MAP_READ_NODE_S` (a cancelled read drops
    its connection in redis-py, so no reply is left for the next command)."""

    __slots__ = ("_node",)

    def __init__(self, node: Any) -> None:
        self._node = node

    def __getattr__(self, name: str) -> Any:
        return getattr(self._node, name)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with asyncio.timeout(MAP_READ_NODE_S):
            return await self._node.execute_command(*args, **kwargs)


class _OneMapReadAtOnce(NodesManager):
    """redis-py 5's `NodesManager.initialize` walks its startup nodes across awaits while a
    concurrent call replaces them ("dictionary changed size during iteration", seen when a
    primary fails over under a member's batches, shard subscribers and redis-py's own retries).
    Here reads of the slot map run one at a time, and one that waited while another finished
    takes that fresh map instead of reading it again. redis-py's command path also drops a
    node it failed to reach (a connection error or a timeout, on a live node too) from the
    startup nodes, outside any map read: the walk goes over a copy of them (`_Snapshots`), so
    a drop cannot break it (it killed a member's placement loop in the failover test), and it
    starts from every node of the last map read too, so drops that emptied the startup nodes
    between two reads cannot leave the client with no node to ask, for good (members in the
    failover test stayed unable to reach a healthy cluster). The manager has `__slots__`: its
    state lives beside it, by id, checked against the running loop (ids are reused)."""

    __slots__ = ()
    _reads: ClassVar[dict[int, _MapReads]] = {}

    async def initialize(self) -> None:
        if not isinstance(self.startup_nodes, _Snapshots):
            self.startup_nodes = _Snapshots(self.startup_nodes)
        for name, node in self.nodes_cache.items():
            self.startup_nodes.setdefault(name, node)
        reads = self._reads.get(id(self))
        if reads is None or reads.loop is not asyncio.get_running_loop():
            reads = self._reads[id(self)] = _MapReads()
        seen = reads.done
        async with reads.lock:
            if reads.done != seen:
                return
            await super().initialize()
            reads.done += 1


def _one_map_read_at_once(client: RedisCluster) -> None:
    """See `_OneMapReadAtOnce` (the same object, one method more careful)."""
    client.nodes_manager.__class__ = _OneMapReadAtOnce
