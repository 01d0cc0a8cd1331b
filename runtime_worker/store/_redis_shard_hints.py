"""Pushed new-input hints on a Redis Cluster: sharded pub/sub, one subscriber per primary.

A script may touch one slot only, and a plain `PUBLISH` on a cluster is broadcast to every node.
So submit.lua `SPUBLISH`es on a shard channel in the Worker's own slot (`Keys.hint_channel`,
tagged by `slot_tag`), and a member `SSUBSCRIBE`s its channel of every slot, each on the node
that serves the slot: one plain connection per primary (redis-py 5's cluster client has no
pub/sub). When the slot map changes (a node says `MOVED`, or unsubscribes us from a slot it gave
away, or a connection is lost) the map is read again and everything subscribed anew. A hint
published where nobody listens counts 0 listeners and submit rings the doorbell instead, so a
gap costs latency, never an input.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from redis import exceptions as rex
from redis.asyncio import Connection, RedisCluster
from redis.asyncio.cluster import ClusterNode

from runtime_worker.store._scripts import TRANSPORT_ERRORS
from runtime_worker.store.base import WakeUp
from shared.keys import SLOTS, Keys

CHECK_S = 5.0
"""How often a quiet subscriber pings its node (and compares the slot map): a node that stopped
answering is noticed within two of these."""
CHUNK = 1000  # SSUBSCRIBEs per write (one channel each: channels of one call share a slot)
_PING = b"*1\r\n$4\r\nPING\r\n"


class Resubscribe(Exception):
    """The slot map changed under a subscriber: read it again and subscribe anew."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pack_ssubscribe(channel: str) -> bytes:
    raw = channel.encode()
    return b"*2\r\n$10\r\nSSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(raw), raw)


class ShardHints:
    """A member's shard-channel subscribers, node by node, following the slot map."""

    def __init__(self, client: RedisCluster, keys: Keys, read: Callable[[str], WakeUp]) -> None:
        self._client = client
        self._keys = keys
        self._read = read  # a hint's text as the wake-up it tells of
        self._channels: dict[str, list[str]] = {}  # member id → its channel of every slot

    async def follow(self, member_id: str, put: Callable[[WakeUp], None]) -> None:
        """Subscribe `member_id`'s channels where the map says and hand each hint to `put`;
        returns when the map must be read again, raises when Redis is away."""
        channels = self._channels.get(member_id)
        if channels is None:  # 16,384 names: made once, off the event loop
            channels = self._channels[member_id] = await asyncio.to_thread(
                lambda: [self._keys.hint_channel(member_id, slot) for slot in range(SLOTS)]
            )
        await self._client.initialize()
        layout = self._layout()
        readers = [
            asyncio.create_task(
                self._node(node, [channels[s] for s in slots], put), name="yoi-shard"
            )
            for node, slots in layout.values()
        ]
        try:
            while True:
                done, _ = await asyncio.wait(
                    readers, timeout=CHECK_S, return_when="FIRST_COMPLETED"
                )
                for reader in done:
                    reader.result()  # Resubscribe, or the node's error
                if done or self._layout().keys() != layout.keys() or self._moved(layout):
                    return
        except Resubscribe:
            return
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

    async def refresh(self) -> None:
        """Read the slot map again (after a change, or a lost node)."""
        await self._client.nodes_manager.initialize()

    def _layout(self) -> dict[str, tuple[ClusterNode, list[int]]]:
        """Each primary (by name) with the slots it serves."""
        layout: dict[str, tuple[ClusterNode, list[int]]] = {}
        for slot, nodes in self._client.nodes_manager.slots_cache.items():
            if nodes:
                layout.setdefault(nodes[0].name, (nodes[0], []))[1].append(slot)
        return layout

    def _moved(self, layout: dict[str, tuple[ClusterNode, list[int]]]) -> bool:
        now = self._layout()
        return any(now[name][1] != slots for name, (_, slots) in layout.items())

    async def _node(
        self, node: ClusterNode, channels: Sequence[str], put: Callable[[WakeUp], None]
    ) -> None:
        """One node's subscriber: its own connection (never pooled), closed when it ends."""
        options = {**node.connection_kwargs, "socket_timeout": None}  # waits are bounded here
        conn: Connection = node.connection_class(**options)
        try:
            async with asyncio.timeout(CHECK_S):
                await conn.connect()  # type: ignore[no-untyped-call]
                for start in range(0, len(channels), CHUNK):
                    chunk = channels[start : start + CHUNK]
                    await conn.send_packed_command(b"".join(map(_pack_ssubscribe, chunk)))
            pinged = False
            while True:
                reply = await conn.read_response(timeout=CHECK_S, disconnect_on_error=True)
                if reply is None:  # quiet: is the node still there?
                    if pinged:
                        raise rex.TimeoutError("shard subscriber's node stopped answering")
                    async with asyncio.timeout(CHECK_S):
                        await conn.send_packed_command(_PING)
                    pinged = True
                    continue
                pinged = False
                kind = _text(reply[0]) if isinstance(reply, list) and reply else ""
                if kind == "smessage":
                    put(self._read(_text(reply[2])))
                elif kind == "sunsubscribe":  # the node gave a slot away
                    raise Resubscribe
        except rex.ResponseError as exc:  # MOVED for a slot the map says is here
            raise Resubscribe from exc
        finally:
            with contextlib.suppress(*TRANSPORT_ERRORS, OSError):
                await conn.disconnect()
