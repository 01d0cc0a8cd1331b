"""Placement hints: a runtime-wide stream telling members "this Worker needs a host now".

Members register and heartbeat through `RedisStore.heartbeat` (the members hash); this module
adds the one Redis structure placement needs on top: a stream every member reads without a
consumer group (each one considers every hint; the lease decides who takes the Worker). A new
Worker (`RedisStore.create` hints it in the create's own round trip) or one a member handed back
is taken within milliseconds instead of at the next sweep. Hints are only hints: trimmed, and
possibly lost while Redis is away; every member's periodic sweep keeps placement correct without
them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from runtime_worker.store._scripts import answer, translate_errors
from runtime_worker.store.base import Store
from runtime_worker.store.redis import PLACEMENT_MAXLEN, RedisStore
from shared.errors import RuntimeUnavailable

log = logging.getLogger("yoi.membership")

HINTS_MAXLEN = PLACEMENT_MAXLEN
# Blocking reads stay well under the store client's socket timeout.
MAX_BLOCK_MS = 5000


class PlacementHints:
    """The placement stream of one fleet runtime, over the store's Redis client."""

    def __init__(self, store: RedisStore) -> None:
        self.runtime_id = store.runtime_id
        self._client = store.client
        self._key = store.keys.placement()

    @translate_errors
    async def announce(self, worker_ids: Sequence[str]) -> None:
        """Tell every member these Workers need a host (one round trip)."""
        if not worker_ids:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for worker_id in worker_ids:
                pipe.xadd(self._key, {"w": worker_id}, maxlen=HINTS_MAXLEN, approximate=True)
            await pipe.execute()

    @translate_errors
    async def newest(self) -> str:
        """The id to read after for "from now on"; pinned, so no hint slips between calls."""
        newest = await answer(self._client.xrevrange(self._key, count=1))
        return str(newest[0][0]) if newest else "0-0"

    @translate_errors
    async def wait(self, last_id: str, timeout_ms: int) -> tuple[list[str], str]:
        """Hints after `last_id`, waiting up to `timeout_ms`; the Worker ids and the new id."""
        block = min(timeout_ms, MAX_BLOCK_MS) if timeout_ms >= 1 else None
        reply = await answer(
            self._client.xread({self._key: last_id}, count=HINTS_MAXLEN, block=block)
        )
        if not reply:
            return [], last_id
        entries: list[tuple[str, dict[str, str]]] = reply[0][1]
        worker_ids = [fields["w"] for _, fields in entries if "w" in fields]
        return list(dict.fromkeys(worker_ids)), entries[-1][0]


async def announce_placement(store: Store, worker_id: str) -> None:
    """A hint for a fleet: members take the Worker at once (one that must be drained, say). A
    no-op for other stores; a hint that cannot be sent is left to the members' sweep."""
    if not isinstance(store, RedisStore):
        return
    try:
        await PlacementHints(store).announce([worker_id])
    except RuntimeUnavailable as exc:
        log.warning("placement hint for worker %s dropped (%s)", worker_id, type(exc).__name__)


__all__ = ["PlacementHints", "announce_placement"]
