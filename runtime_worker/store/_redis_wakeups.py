"""A fleet member's wake-ups: pushed hints, a doorbell stream behind them, both only hints.

`submit.lua` publishes a new input's hint for the host and counts the listeners; when none heard
it, `RedisStore` rings the host's doorbell stream instead, as it does for cancels and stops. On
one server the hint goes on the host's channel (named as its doorbell, `PUBLISH`); on a Redis
Cluster on the host's shard channel of the Worker's slot (`SPUBLISH`, `_redis_shard_hints`).
`listen` merges the two for one member, so a host reads one stream of `WakeUp`s. Correctness
never depends on them: the host's sweep (`pending_work`) finds whatever a lost hint missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from redis import exceptions as rex
from redis.asyncio import Redis, RedisCluster
from redis.commands.core import AsyncScript

from runtime_worker.store import _redis_codec as codec
from runtime_worker.store._redis_blocking import BELL_MAXLEN, doorbell
from runtime_worker.store._redis_client import Client
from runtime_worker.store._redis_pipeline import Pipeline
from runtime_worker.store._redis_shard_hints import ShardHints
from runtime_worker.store._scripts import TRANSPORT_ERRORS, argv, check
from runtime_worker.store.base import WakeUp
from shared.keys import Keys

log = logging.getLogger("yoi.store.redis")

RETRY_S = 0.5  # a listener that lost Redis tries again after this long
BELL_WAIT_MS = 1000
RING_WAIT_S = 0.5  # a doorbell ring waited for at most this long (a quarter of a call's deadline)
RESUBSCRIBE_S = 0.05  # a slot map that changed is read again after this long
INTERRUPT_SUFFIX = ":interrupt"
"""How submit.lua marks a hint whose input interrupts the running one (it gets it as an
argument from `RedisStore.submit_input`, never spells it)."""
AHEAD_MAX_BYTES = 4096
"""A new input's entry up to this size rides in its hint (`WakeUp.ahead`): pub/sub copies it
to the host, which may start the run before its take answers; a longer one is read by the
take, as every input was before."""


def wake_up_of(hint: str) -> WakeUp:
    """A pushed hint as submit.lua writes it: the Worker id, then the interrupt suffix, or a
    space and the input's entry (one that does not parse is left out: a bare hint)."""
    worker_id, _, entry = hint.partition(" ")
    if entry:
        try:
            return WakeUp(worker_id, cancels=False, ahead=codec.parse_input("", entry))
        except (ValueError, KeyError, TypeError):
            return WakeUp(worker_id, cancels=False)
    bare = worker_id.removesuffix(INTERRUPT_SUFFIX)
    return WakeUp(bare, cancels=bare != worker_id)


class WakeUps:
    """The hint channels of one fleet runtime's members."""

    def __init__(
        self, client: Client, blocking: Client, keys: Keys, pipeline: Pipeline, ring: AsyncScript
    ) -> None:
        self._client = client
        self._blocking = blocking  # doorbell reads: see `_redis_blocking.blocking_client`
        self._keys = keys
        self._pipeline = pipeline  # rings go batched with the hot scripts
        self._ring = ring
        self._shards = (
            ShardHints(client, keys, wake_up_of) if isinstance(client, RedisCluster) else None
        )

    @property
    def publish(self) -> str:
        """How submit.lua publishes new inputs' hints: on one server or a cluster's shard."""
        return "PUBLISH" if self._shards is None else "SPUBLISH"

    def channel_around(self, worker_id: str) -> tuple[str, str]:
        """The hint channel of a host of `worker_id` is `prefix + member id + suffix`."""
        if self._shards is None:
            return self._keys.bell_around
        return self._keys.hint_around(worker_id)

    async def ring(self, member_id: str, worker_id: str) -> None:
        """Only a hint: when it cannot be delivered the member's sweep finds the news. Waited
        for `RING_WAIT_S` at most: the input it tells of is accepted already, and its caller's
        answer must not wait on a node that does not answer (on a cluster the doorbell may live
        on another node than the Worker)."""
        try:
            args = argv("ring", worker_id=worker_id, maxlen=BELL_MAXLEN)
            async with asyncio.timeout(RING_WAIT_S):
                check(await self._pipeline.run(self._ring, [self._keys.bell(member_id)], args))
        except (ValueError, rex.RedisError, OSError, TimeoutError) as exc:
            log.warning("hint for member %s dropped (%s)", member_id, type(exc).__name__)

    async def listen(self, member_id: str) -> AsyncIterator[WakeUp]:
        """Pushed hints and doorbell rings for `member_id`, merged; never raises for Redis
        being away (each reader retries on its own). Close it to stop both readers."""
        queue: asyncio.Queue[WakeUp] = asyncio.Queue()
        readers = {asyncio.create_task(self._rung(member_id, queue), name="yoi-doorbell")}
        pushed = (
            self._pushed(member_id, queue)
            if self._shards is None
            else self._sharded(member_id, queue)
        )
        readers.add(asyncio.create_task(pushed, name="yoi-hints"))
        getting: asyncio.Task[WakeUp] | None = None
        try:
            while True:
                getting = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getting, *readers}, return_when="FIRST_COMPLETED")
                if getting not in done:
                    for reader in done:
                        reader.result()  # a reader's bug surfaces here, not in the log
                    raise RuntimeError("a wake-up reader ended")
                yield getting.result()
        finally:
            owned = [*readers, *([getting] if getting is not None else [])]
            for task in owned:
                task.cancel()
            await asyncio.gather(*owned, return_exceptions=True)

    async def _pushed(self, member_id: str, queue: asyncio.Queue[WakeUp]) -> None:
        channel = self._keys.bell(member_id)
        assert isinstance(self._client, Redis)  # one server
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(channel)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        queue.put_nowait(wake_up_of(str(message["data"])))
            except (*TRANSPORT_ERRORS, rex.ReadOnlyError):
                pass  # nobody hears hints meanwhile: they go to the doorbell instead
            finally:
                with contextlib.suppress(*TRANSPORT_ERRORS):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(RETRY_S)

    async def _sharded(self, member_id: str, queue: asyncio.Queue[WakeUp]) -> None:
        assert self._shards is not None  # a cluster
        stale = False
        while True:
            try:
                if stale:
                    await self._shards.refresh()
                await self._shards.follow(member_id, queue.put_nowait)
                stale = True  # the slot map changed: read it again, subscribe anew
                await asyncio.sleep(RESUBSCRIBE_S)
            except (rex.RedisError, rex.RedisClusterException, OSError):
                stale = True  # meanwhile hints go to the doorbell
                await asyncio.sleep(RETRY_S)

    async def _rung(self, member_id: str, queue: asyncio.Queue[WakeUp]) -> None:
        bell = self._keys.bell(member_id)
        last_id = "$"
        while True:
            try:
                worker_ids, last_id = await doorbell(self._blocking, bell, last_id, BELL_WAIT_MS)
            except (*TRANSPORT_ERRORS, rex.ReadOnlyError):
                await asyncio.sleep(RETRY_S)
                continue
            for worker_id in worker_ids:
                queue.put_nowait(WakeUp(worker_id, cancels=True))
