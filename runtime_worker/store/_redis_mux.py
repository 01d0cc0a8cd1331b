"""`RedisEventMux`: many Workers' event streams followed with one blocking `XREAD` (one server).

A gateway following a thousand Workers with a reader per Worker keeps a thousand clients
blocked in Redis and pays a round trip and two deadlines per Worker per wake. One `XREAD BLOCK`
over many streams answers every stream with news in one reply. It also follows a doorbell
stream of its own (`Keys.mux_bell`): a Worker added while the read blocks rings it, so the read
ends at once and the next one includes the newcomer.

The per-stream checks of `tail_events` hold per stream: a page as full as `TRUSTED_PAGE` (what
a read after a trimmed-away cursor answers) is read again through the script, which judges that
stream's cursor alone. Only on one server: on a Redis Cluster a multi-key `XREAD` is legal
within one slot only, so `RedisStore.event_mux` answers None there.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from runtime_worker.store import _redis_codec as codec
from runtime_worker.store._redis_batch import packed, send_many
from runtime_worker.store._redis_client import Client
from runtime_worker.store._redis_transport import Transport
from runtime_worker.store._scripts import answer, translate_errors
from runtime_worker.store.base import EventMux
from runtime_worker.store.cursor import format_cursor, parse_cursor
from shared.errors import InvalidInput, RuntimeUnavailable, YoiError
from shared.events import Event
from shared.settings import MIN_EVENTS_MAXLEN

if TYPE_CHECKING:
    from runtime_worker.store._redis_readers import RedisReaders

TRUSTED_PAGE = MIN_EVENTS_MAXLEN  # as `RedisReaders._follow`: a fuller page is judged again
BELL_TTL_MS = 60_000  # a doorbell outlives its reader by this long at most
_BELL_FIELD = "r"
KEY_CACHE = 1024  # events keys kept (a reader follows a few dozen Workers at a time)


class RedisEventMux(EventMux):
    """One reader's streams and doorbell; `read` is called by one task at a time."""

    def __init__(self, store: RedisReaders, blocking: Client, transport: Transport) -> None:
        self._store = store
        self._blocking = blocking  # a client whose reads a cancellation always ends
        self._transport = transport
        self.runtime_id = store.runtime_id  # what `translate_errors` names and bounds
        self.call_timeout_s = store.call_timeout_s
        self._bell = store.keys.mux_bell(secrets.token_hex(8))
        # The doorbell's newest entry read: an explicit id, not `$`, so a ring that lands
        # before the read reaches Redis still ends it at once.
        self._bell_after = "0-0"
        self._keys: dict[str, str] = {}
        self._positions: dict[str, tuple[str, str]] = {}  # worker id → (cursor, stream id)

    @translate_errors
    async def read(
        self, cursors: Mapping[str, str], limit: int, timeout_ms: int
    ) -> dict[str, list[Event] | YoiError]:
        by_key: dict[str, str] = {}
        streams: dict[Any, Any] = {}
        pages: dict[str, list[Event] | YoiError] = {}
        for worker_id, after in cursors.items():
            try:
                key = self._events_key(worker_id)
                streams[key] = self._position(worker_id, after)
            except (ValueError, InvalidInput):  # that follower's mistake alone
                pages[worker_id] = InvalidInput("malformed worker id or cursor")
                continue
            by_key[key] = worker_id
        if pages:
            return pages
        streams[self._bell] = self._bell_after
        block = timeout_ms if timeout_ms >= 1 else None  # BLOCK 0 would wait for ever
        # One deadline (this call's, from `translate_errors`): no slices, no second timeout.
        reply = await answer(self._blocking.xread(streams, count=TRUSTED_PAGE, block=block))
        full: list[str] = []
        for key, entries in reply or ():
            if key == self._bell:
                self._bell_after = entries[-1][0]
                continue
            worker_id = by_key[key]
            if len(entries) < TRUSTED_PAGE:
                pages[worker_id] = [
                    codec.event_from_entry(worker_id, entry_id, raw["e"])
                    for entry_id, raw in entries[:limit]
                ]
            else:
                full.append(worker_id)
        if full:  # a full page may follow a trimmed-away cursor: the script tells, per Worker
            judged = await asyncio.gather(
                *(self._store.read_events(w, cursors[w], limit) for w in full),
                return_exceptions=True,
            )
            for worker_id, page in zip(full, judged, strict=True):
                if isinstance(page, RuntimeUnavailable) or not isinstance(page, YoiError | list):
                    raise page
                pages[worker_id] = page
        return pages

    def _events_key(self, worker_id: str) -> str:
        """The Worker's events key, built once per Worker followed (every read names them all)."""
        key = self._keys.get(worker_id)
        if key is None:
            if len(self._keys) >= KEY_CACHE:
                self._keys.clear()
            key = self._keys[worker_id] = self._store.keys.events(worker_id)
        return key

    def _position(self, worker_id: str, after: str) -> str:
        """`after` as a stream id, checked and formatted once per cursor: most Workers of a read
        have no news and come back with the same cursor."""
        known = self._positions.get(worker_id)
        if known is not None and known[0] == after:
            return known[1]
        if len(self._positions) >= KEY_CACHE:
            self._positions.clear()
        position = format_cursor(parse_cursor(after))
        self._positions[worker_id] = (after, position)
        return position

    @translate_errors
    async def wake(self) -> None:
        ring = packed("XADD", self._bell, "MAXLEN", 1, "*", _BELL_FIELD, 1)
        renew = packed("PEXPIRE", self._bell, BELL_TTL_MS)
        for reply in await send_many(self._transport, [ring, renew]):
            if isinstance(reply, Exception):
                raise reply
