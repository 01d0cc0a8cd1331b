"""Automatic pipelining of the hot scripts: calls made while a batch is on the wire go together.

Under load a process has many script calls in flight at once (a member runs hundreds of Workers,
the gateway answers dozens of inputs); sent one by one, each pays redis-py's per-command cost
and a write and a wake-up on both sides. Here a call made while no batch is out is sent at once,
alone (no added latency); calls made while one is out wait for it and then go as one batch (one
write, one round trip, `_redis_batch.send_many`). Each call still runs its own script on one
Worker's keys, so nothing about atomicity or Redis Cluster slots changes.

On a Redis Cluster each node has a lane of its own (a call goes to its key's node): a batch out
to one node does not hold back the calls for the others, so a call waits for its own node only,
never for the slowest of the three.

Every call has its own deadline, the one a caller queued behind a batch too: a batch stuck on a
Redis that stopped answering fails when its deadline passes, and the calls waiting behind it
are then sent (or fail) on their own time, never in waves of the socket timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis import exceptions as rex
from redis.commands.core import AsyncScript

from runtime_worker.store._redis_batch import Arg, evalsha, send_many
from runtime_worker.store._redis_transport import Transport

_Script = tuple[AsyncScript, Sequence[str], Sequence[Arg]]
"""A script with its KEYS and ARGV."""
_Call = tuple[AsyncScript, Sequence[str], Sequence[Arg], "asyncio.Future[Any]"]


class Pipeline:
    """The lanes of a store's hot scripts: one on one server, one per node on a cluster."""

    def __init__(self, transport: Transport, deadline_s: float) -> None:
        self.transport = transport
        self.deadline_s = deadline_s
        self._lanes: dict[str, _Lane] = {}

    async def run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """The script's reply, as `script(keys, args)` answers it; `TimeoutError` past the
        deadline (a call still waiting then is never sent)."""
        name = self.transport.node_name(keys[0])
        lane = self._lanes.get(name)
        if lane is None:
            lane = self._lanes[name] = _Lane(self.transport, self.deadline_s)
        return await lane.run(script, keys, args)

    async def aclose(self) -> None:
        """Stop sending what waits (its callers get a connection error)."""
        await asyncio.gather(*(lane.aclose() for lane in self._lanes.values()))


class _Lane:
    """Calls for one node: one out at once, the rest batched behind it."""

    def __init__(self, transport: Transport, deadline_s: float) -> None:
        self.transport = transport
        self.deadline_s = deadline_s
        self._waiting: list[_Call] = []
        self._sending = False
        self._drainer: asyncio.Task[None] | None = None

    async def run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._sending:
            self._waiting.append((script, keys, args, future))
            async with asyncio.timeout(self.deadline_s):
                return await future
        self._sending = True
        try:
            async with asyncio.timeout(self.deadline_s):
                (reply,) = await self._send([(script, keys, args)])
        finally:  # what waited meanwhile goes out in a task of its own
            if self._waiting:
                self._drainer = asyncio.ensure_future(self._drain())
            else:
                self._sending = False
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def aclose(self) -> None:
        if self._drainer is not None and not self._drainer.done():
            self._drainer.cancel()
            await asyncio.gather(self._drainer, return_exceptions=True)

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = [call for call in self._waiting if not call[3].done()]
                self._waiting = []
                if not batch:  # every caller gave up waiting: send nothing
                    continue
                try:
                    async with asyncio.timeout(self.deadline_s):
                        replies = await self._send([(s, k, a) for s, k, a, _ in batch])
                except Exception as exc:  # the connection failed: every call of the batch did
                    replies = [exc] * len(batch)
                except BaseException:
                    _fail(batch, rex.ConnectionError("the batch was cancelled"))
                    raise
                for (_, _, _, future), reply in zip(batch, replies, strict=True):
                    if future.done():
                        continue
                    if isinstance(reply, Exception):
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
        finally:
            self._sending = False
            _fail(self._waiting, rex.ConnectionError("the batch was cancelled"))
            self._waiting = []

    async def _send(self, calls: Sequence[_Script]) -> list[Any]:
        """The replies (an error reply in its place) of the calls, as one batch."""
        transport = self.transport
        # Replicated: on a cluster with replicas an accepted input or a written event survives
        # a failover (one WAIT per node and batch).
        packed = [evalsha(s.sha, k, a) for s, k, a in calls]
        replies = await send_many(transport, packed, replicated=True)
        lost = [i for i, reply in enumerate(replies) if isinstance(reply, rex.NoScriptError)]
        if lost:  # Redis restarted, flushed its scripts or failed over: load them, run again
            for script in {calls[i][0] for i in lost}:
                keys = [calls[i][1][0] for i in lost if calls[i][0] is script]
                script.sha = await transport.load(str(script.script), keys)
            again = [evalsha(calls[i][0].sha, calls[i][1], calls[i][2]) for i in lost]
            again_replies = await send_many(transport, again, replicated=True)
            for index, reply in zip(lost, again_replies, strict=True):
                replies[index] = reply
        return replies


def _fail(calls: list[_Call], exc: Exception) -> None:
    for _, _, _, future in calls:
        if not future.done():
            future.set_exception(exc)
