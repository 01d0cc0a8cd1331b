"""Placement hints: a runtime-wide stream telling members "this Worker needs a host now".

Members register and heartbeat through the members hash (`_redis_members`); placement adds one
structure on top: a stream every member reads without a consumer group (each one considers
every hint; the lease decides who takes the Worker). A new Worker (`RedisStore.create` hints it
in the create's own round trip), one a member handed back, or a stopping one nobody hosts is
taken within milliseconds instead of at the next sweep. Hints are only hints: trimmed, and
possibly lost while Redis is away; every member's periodic sweep keeps placement correct.
"""

from __future__ import annotations

from collections.abc import Sequence

from runtime_worker.store._redis_client import Client
from runtime_worker.store._scripts import answer

PLACEMENT_MAXLEN = 1000  # placement hints kept (approximately): only hints, members sweep too
HINT_IDS = 100
"""Workers named by one hint of a batch create (field `ws`, the ids space-separated; a lone
Worker's hint has `w`): a batch of 1,000 is ten entries, so members reading behind a burst of
batches do not find the stream trimmed past what they have not read."""
MAX_BLOCK_MS = 5000  # blocking reads stay well under the client's socket timeout


class PlacementHints:
    """The placement stream of one fleet runtime."""

    def __init__(self, client: Client, key: str) -> None:
        self._client = client
        self._key = key

    async def announce(self, worker_ids: Sequence[str]) -> None:
        """Tell every member these Workers need a host (one round trip)."""
        if not worker_ids:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for worker_id in worker_ids:
                pipe.xadd(self._key, {"w": worker_id}, maxlen=PLACEMENT_MAXLEN, approximate=True)
            await pipe.execute()

    async def newest(self) -> str:
        """The id to read after for "from now on"; pinned, so no hint slips between calls."""
        newest = await answer(self._client.xrevrange(self._key, count=1))
        return str(newest[0][0]) if newest else "0-0"

    async def wait(self, last_id: str, timeout_ms: int) -> tuple[list[str], str]:
        """Hints after `last_id`, waiting up to `timeout_ms`; the Worker ids and the new id."""
        block = min(timeout_ms, MAX_BLOCK_MS) if timeout_ms >= 1 else None
        reply = await answer(
            self._client.xread({self._key: last_id}, count=PLACEMENT_MAXLEN, block=block)
        )
        if not reply:
            return [], last_id
        entries: list[tuple[str, dict[str, str]]] = reply[0][1]
        return list(dict.fromkeys(hinted(entries))), entries[-1][0]


def hinted(entries: Sequence[tuple[str, dict[str, str]]]) -> list[str]:
    """The Worker ids the hint entries name, in order."""
    worker_ids: list[str] = []
    for _, fields in entries:
        if "w" in fields:
            worker_ids.append(fields["w"])
        elif "ws" in fields:
            worker_ids.extend(fields["ws"].split())
    return worker_ids
