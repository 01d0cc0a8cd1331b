"""One reader for many hubs, where the runtime's store can follow many Workers in one wait.

A hub per followed Worker with a blocking read each keeps as many Redis clients blocked and
pays a round trip per Worker per wake (31 % of the gateway's CPU under the `agent_server`
bench). A `Mux` follows up to `MUX_STREAMS` hubs of one runtime with one `EventMux.read` per
wake and hands each page to its hub; `Muxes` places a runtime's hubs in as many muxes as it
takes. What the per-hub reader guarantees holds per hub:

- a hub's cursor is its own last page's, advanced only here, so no gap and no repeat; a hub
  added while a read is out rings the reader (`EventMux.wake`) and is in the next read;
- a page that fails (`CursorExpired`) ends that hub alone; a hub silent for `IDLE_CHECK_S` is
  asked about alone (`Runtime.tail` without a wait), which tells a vanished Worker
  (`WorkerNotFound`) as the per-hub reader's empty wait does;
- Redis away (`RuntimeUnavailable`) keeps every hub and its subscribers, and the mux reads on
  from the same cursors after `UNAVAILABLE_RETRY_S`;
- the last hub out cancels the read at once (no blocked client is left behind), and
  `Hubs.aclose` ends every task here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from runtime_worker.runtime import Runtime
from runtime_worker.store.base import EventMux
from shared.aio import cancel_and_wait
from shared.errors import RuntimeUnavailable, YoiError
from shared.events import EventPage
from shared.timeutil import monotonic_s

if TYPE_CHECKING:
    from gateway.hub import Hub

log = logging.getLogger("yoi.gateway.sse")

MUX_STREAMS = 32  # hubs per read: a wake re-sends every key of its read
MUX_WAIT_MS = 5_000  # one read's wait
IDLE_CHECK_S = 15.0  # as long as a per-hub reader waits before its read judges the Worker
IDLE_SCAN_S = 1.0  # the hubs scanned for silent ones at most this often (not on every wake)
UNAVAILABLE_RETRY_S = 0.5  # between reads while Redis is away (as `gateway.hub`'s)


def _cursor(hub: Hub) -> str:
    assert hub.cursor is not None, "a hub joins a mux once its cursor is known"
    return hub.cursor


class Mux:
    """Up to `MUX_STREAMS` hubs of one runtime, read by one task while any is followed."""

    def __init__(
        self,
        runtime: Runtime,
        reader: EventMux,
        *,
        page_limit: int,
        on_gone: Callable[[Hub], None],
    ) -> None:
        self.runtime = runtime
        self.reader = reader
        self.page_limit = page_limit
        self.hubs: dict[str, Hub] = {}  # worker id → its hub
        self._heard: dict[str, float] = {}  # worker id → when its stream last answered
        self._on_gone = on_gone
        self._task: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Task[None]] = set()  # told to stop, not ended yet
        self._sent: dict[str, Hub] | None = None  # the hubs of the read that is out
        self._ring: asyncio.Task[None] | None = None
        self._ring_again = False
        self._idle_seen_s = 0.0  # when the hubs were last scanned for silent ones

    @property
    def full(self) -> bool:
        return len(self.hubs) >= MUX_STREAMS

    def readers(self) -> int:
        """Hubs followed, and reads told to stop that have not ended yet."""
        return len(self.hubs) + len(self._stopping)

    def add(self, hub: Hub) -> None:
        _cursor(hub)
        self.hubs[hub.worker_id] = hub
        self._heard[hub.worker_id] = monotonic_s()
        hub.mux = self
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="yoi-sse-mux")
            self._task.add_done_callback(self._reap)
        elif self._sent is not None and self._sent.get(hub.worker_id) is not hub:
            self._wake()

    def discard(self, hub: Hub) -> None:
        """Stop following `hub` (its last subscriber left); synchronous, as `Hubs.leave`."""
        if self.hubs.get(hub.worker_id) is hub:
            self._forget(hub)

    async def aclose(self) -> None:
        tasks = [t for t in (self._task, self._ring, *self._stopping) if t is not None]
        self._task = None
        await cancel_and_wait(*tasks)

    # -- the reader ------------------------------------------------------------------------------

    async def _run(self) -> None:
        me = asyncio.current_task()
        try:
            while self._task is me and self.hubs:
                await self._check_idle()
                sent = dict(self.hubs)
                cursors = {worker_id: _cursor(hub) for worker_id, hub in sent.items()}
                self._sent = sent
                try:
                    pages = await self.reader.read(cursors, self.page_limit, MUX_WAIT_MS)
                except RuntimeUnavailable:
                    # Redis is away: every hub keeps its subscribers (they beat on) and its
                    # cursor; the next read starts from there once Redis answers.
                    await asyncio.sleep(UNAVAILABLE_RETRY_S)
                    continue
                finally:
                    self._sent = None
                if self._task is not me:
                    break  # told to stop while the read was out (and a new reader may run)
                now = monotonic_s()
                for worker_id, page in pages.items():
                    hub = sent[worker_id]
                    if self.hubs.get(worker_id) is not hub:
                        continue  # left (or failed and was replaced) while the read was out
                    self._heard[worker_id] = now
                    if isinstance(page, YoiError):
                        self._end(hub, page)
                    elif page:
                        hub.carry(page)
                await asyncio.sleep(0)  # let connections drain between pages of a burst
        except YoiError as exc:
            self._end_all(exc)
        except Exception as exc:
            log.error("event reader of many workers failed: %s", type(exc).__name__)
            self._end_all(RuntimeUnavailable("the event stream failed"))

    async def _check_idle(self) -> None:
        """Ask about each hub silent for `IDLE_CHECK_S` alone, without a wait: its Worker may
        be gone, which no read of many streams tells. Between reads, so its page (if news came
        just now) cannot cross one of the mux's own."""
        now = monotonic_s()
        if now < self._idle_seen_s + IDLE_SCAN_S:
            return
        self._idle_seen_s = now
        idle = [hub for w, hub in self.hubs.items() if now - self._heard[w] >= IDLE_CHECK_S]
        if not idle:
            return
        answers = await asyncio.gather(
            *(self._tail_now(hub) for hub in idle), return_exceptions=True
        )
        now = monotonic_s()
        for hub, page in zip(idle, answers, strict=True):
            if self.hubs.get(hub.worker_id) is not hub or isinstance(page, RuntimeUnavailable):
                continue  # left meanwhile, or asked again on the next pass
            if isinstance(page, YoiError):
                self._end(hub, page)
            elif isinstance(page, BaseException):
                raise page
            else:
                self._heard[hub.worker_id] = now
                if page.events:
                    hub.carry(page.events)

    async def _tail_now(self, hub: Hub) -> EventPage:
        return await self.runtime.tail(
            hub.worker_id, after=_cursor(hub), limit=self.page_limit, wait_ms=0
        )

    # -- the doorbell ----------------------------------------------------------------------------

    def _wake(self) -> None:
        """Ring the reader (one ring task at a time; a hub added while it rings rings again)."""
        self._ring_again = True
        if self._ring is None:
            self._ring = asyncio.create_task(self._ringing(), name="yoi-sse-mux-ring")
            self._ring.add_done_callback(self._rung)

    async def _ringing(self) -> None:
        while self._ring_again:
            self._ring_again = False
            try:
                await self.reader.wake()
            except RuntimeUnavailable:
                return  # the read fails too, or ends by its timeout: the hub is read then

    def _rung(self, task: asyncio.Task[None]) -> None:
        if self._ring is task:
            self._ring = None
        if not task.cancelled() and task.exception() is not None:
            log.error("waking an event reader failed: %s", type(task.exception()).__name__)

    # -- hubs leaving ----------------------------------------------------------------------------

    def _end(self, hub: Hub, error: YoiError) -> None:
        """`hub`'s stream failed on its own: its subscribers get the error, the others read on."""
        self._forget(hub)
        hub.fail(error)
        self._on_gone(hub)

    def _end_all(self, error: YoiError) -> None:
        for hub in list(self.hubs.values()):
            self._end(hub, error)

    def _forget(self, hub: Hub) -> None:
        del self.hubs[hub.worker_id]
        del self._heard[hub.worker_id]
        hub.mux = None
        if not self.hubs:
            self._stop()

    def _stop(self) -> None:
        """No hub left: end the read now, so no client stays blocked in Redis for nobody."""
        task, self._task = self._task, None
        if task is None or task.done():
            return
        self._stopping.add(task)
        if task is not asyncio.current_task():  # the reader itself ends at its loop's test
            task.cancel()

    def _reap(self, task: asyncio.Task[None]) -> None:
        self._stopping.discard(task)
        if self._task is task:
            self._task = None
        if not task.cancelled():
            task.exception()  # retrieved: `_run` handles its errors, this only marks it seen


class Muxes:
    """A runtime's muxes: each hub goes to the first with room, a new one when all are full."""

    def __init__(
        self,
        runtime: Runtime,
        first: EventMux,
        *,
        page_limit: int,
        on_gone: Callable[[Hub], None],
    ) -> None:
        self.runtime = runtime
        self.page_limit = page_limit
        self._on_gone = on_gone
        self._spare: EventMux | None = first
        self._muxes: list[Mux] = []

    def add(self, hub: Hub) -> None:
        mux = next((m for m in self._muxes if not m.full), None)
        if mux is None:
            reader = self._spare or self.runtime.event_mux()
            self._spare = None
            assert reader is not None, "a runtime with an event mux makes more on request"
            mux = Mux(self.runtime, reader, page_limit=self.page_limit, on_gone=self._on_gone)
            self._muxes.append(mux)
        mux.add(hub)

    def readers(self) -> int:
        return sum(mux.readers() for mux in self._muxes)

    async def aclose(self) -> None:
        await asyncio.gather(*(mux.aclose() for mux in self._muxes))
