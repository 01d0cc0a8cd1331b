"""Fan-out: one store reader per Worker, however many stream connections follow it.

A thousand browsers on one Worker must not mean a thousand Redis readers. The first connection
to a Worker starts its `Hub`: one task following `Runtime.tail` (a blocking read per wake) and
handing every page to each connection's bounded `Subscription`. The task stops as soon as the
last connection leaves: it is cancelled, and it is told to stop as well, so that a cancellation
a library swallows (redis-py's write under `wait_for` on Python 3.11) still ends it after the
call it is in; `Hubs.readers` counts tasks until they have really ended.
Where the runtime's store reads many Workers in one wait (`Runtime.event_mux`, one Redis
server), hubs share readers instead (`gateway.mux`): a hub's task only starts it, and its mux
carries its pages, with the same guarantees.

Joining without gap or repeat: a connection registers with the hub first, learning the hub's
cursor `h` at that instant (everything after `h` will reach its buffer), then catches up from its
own cursor with event pages until it has sent `h` or more, then drains its buffer, skipping any
event at or before the last one it sent. Registration and fan-out are synchronous blocks on the
event loop, so `h` is exact.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Callable, Sequence

from gateway.mux import Mux, Muxes
from runtime_worker.runtime import Runtime
from shared.errors import RuntimeUnavailable, YoiError
from shared.events import Event

log = logging.getLogger("yoi.gateway.sse")

HUB_WAIT_MS = 15_000
UNAVAILABLE_RETRY_S = 0.5  # between reads while Redis is away: bounded, never a hot loop
NOW = "now"


def cursor_position(cursor: str) -> tuple[int, int]:
    """The one place the gateway looks inside a cursor (`<ms>-<n>`, or `<ms>`): clients treat
    cursors as opaque, but the hub must order them to drop what a connection already sent."""
    ms, _, seq = cursor.partition("-")
    return int(ms), int(seq or 0)


class Subscription:
    """One connection's bounded buffer. Overflow (a client too slow to keep up) or a hub failure
    closes it; the connection then ends and the client resumes from its last cursor."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.overflowed = False
        self.failure: YoiError | None = None
        self.closed = asyncio.Event()
        self._buffer: deque[Event] = deque()
        self._ready = asyncio.Event()

    @property
    def lag(self) -> int:
        return len(self._buffer)

    def deliver(self, events: Sequence[Event]) -> bool:
        """Buffer events; False (and closed, buffer freed) when they do not fit."""
        if self.closed.is_set():
            return False
        if len(self._buffer) + len(events) > self.capacity:
            self.overflowed = True
            self._buffer.clear()
            self._close()
            return False
        self._buffer.extend(events)
        self._ready.set()
        return True

    def end(self) -> None:
        """Close without an error (the server is shutting down): the stream ends cleanly."""
        self._close()

    def fail(self, error: YoiError) -> None:
        self.failure = error
        self._close()

    def _close(self) -> None:
        self.closed.set()
        self._ready.set()

    async def take(self) -> list[Event]:
        """Everything buffered, waiting for at least one event unless closed."""
        while not self._buffer and not self.closed.is_set():
            self._ready.clear()
            await self._ready.wait()
        events = list(self._buffer)
        self._buffer.clear()
        return events


class Hub:
    """The one reader of one Worker's events while anyone follows it."""

    def __init__(
        self,
        runtime: Runtime,
        worker_id: str,
        *,
        page_limit: int,
        on_events: Callable[[str, Sequence[Event]], None],
        on_overflow: Callable[[], None],
    ) -> None:
        self.runtime = runtime
        self.worker_id = worker_id
        self.page_limit = page_limit
        self.cursor: str | None = None
        self.subscribers: set[Subscription] = set()
        self.started = asyncio.Event()
        self.joining = 0
        self.stopping = False
        self.failure: YoiError | None = None
        self.mux: Mux | None = None  # the shared reader carrying this hub's pages, if any
        self._on_events = on_events
        self._on_overflow = on_overflow

    async def run(self) -> None:
        try:
            self.cursor = await self._head()
            self.started.set()
            while not self.stopping:
                # The hub's cursor is always its own last page's: one blocking read per wake.
                try:
                    page = await self.runtime.tail(
                        self.worker_id,
                        after=self.cursor,
                        limit=self.page_limit,
                        wait_ms=HUB_WAIT_MS,
                    )
                except RuntimeUnavailable:
                    # Redis is away: subscribers keep their heartbeats, and the hub reads on
                    # from its cursor once Redis answers again (no gap, no repeat).
                    await asyncio.sleep(UNAVAILABLE_RETRY_S)
                    continue
                if page.events:
                    self.carry(page.events)
                await asyncio.sleep(0)  # let connections drain between pages of a burst
        except YoiError as exc:
            self.fail(exc)
        except Exception as exc:
            log.error("event reader of a worker failed: %s", type(exc).__name__)
            self.fail(RuntimeUnavailable("the event stream failed"))

    async def start(self, muxes: Muxes) -> None:
        """`run` for a hub whose pages a mux carries: learn the cursor, join a mux, end."""
        try:
            self.cursor = await self._head()
            if not self.stopping:
                muxes.add(self)
            self.started.set()
        except YoiError as exc:
            self.fail(exc)
        except Exception as exc:
            log.error("event reader of a worker failed: %s", type(exc).__name__)
            self.fail(RuntimeUnavailable("the event stream failed"))

    def carry(self, events: Sequence[Event]) -> None:
        """Hand the page after the hub's cursor to every subscriber; the cursor moves past it."""
        self._on_events(self.runtime.runtime_id, events)
        for subscription in list(self.subscribers):
            if not subscription.deliver(events):
                self.subscribers.discard(subscription)
                self._on_overflow()
        self.cursor = events[-1].cursor

    async def _head(self) -> str:
        """The Worker's newest cursor: the hub starts there, joiners catch up on their own and
        the hub only carries news. Redis away at the start is waited out as it is later: the
        joiners' streams keep beating while they wait for `started`."""
        while True:
            try:
                return (await self.runtime.events(self.worker_id, after=NOW, limit=1)).cursor
            except RuntimeUnavailable:
                await asyncio.sleep(UNAVAILABLE_RETRY_S)

    def fail(self, error: YoiError) -> None:
        """End every subscriber with `error` (their streams send it as an error frame)."""
        self.failure = error
        for subscription in self.subscribers:
            subscription.fail(error)
        self.subscribers.clear()
        self.started.set()


class Hubs:
    """Every live hub, keyed by (runtime, worker); owns their tasks, and the muxes that read
    for them when `multiplex` is on and a runtime's store has one (`Runtime.event_mux`)."""

    def __init__(
        self,
        *,
        capacity: int,
        page_limit: int,
        on_events: Callable[[str, Sequence[Event]], None],
        on_overflow: Callable[[], None],
        multiplex: bool = False,
    ) -> None:
        self.capacity = capacity
        self.page_limit = page_limit
        self.multiplex = multiplex
        self._on_events = on_events
        self._on_overflow = on_overflow
        self._hubs: dict[tuple[str, str], Hub] = {}
        self._tasks: dict[Hub, asyncio.Task[None]] = {}
        self._muxes: dict[str, Muxes] = {}
        self._unmuxed: set[str] = set()  # runtimes whose store follows one Worker per read

    def __len__(self) -> int:
        return len(self._hubs)

    def readers(self) -> int:
        """Hubs being read (by a task of their own or a mux's), including reads told to stop
        that have not ended yet."""
        own = sum(1 for hub in self._tasks if hub.mux is None)  # a mux counts its own hubs
        return own + sum(muxes.readers() for muxes in self._muxes.values())

    def subscribers(self) -> int:
        return sum(len(hub.subscribers) for hub in self._hubs.values())

    def max_lag(self) -> int:
        return max((s.lag for hub in self._hubs.values() for s in hub.subscribers), default=0)

    def subscription(self) -> Subscription:
        return Subscription(self.capacity)

    async def join(
        self, runtime: Runtime, worker_id: str, subscription: Subscription
    ) -> tuple[Hub, str]:
        """Register a connection's buffer; returns its hub and the hub's cursor `h` then."""
        key = (runtime.runtime_id, worker_id)
        hub = self._hubs.get(key)
        if hub is None or hub.failure is not None:  # a failed hub is replaced, not joined
            hub = Hub(
                runtime,
                worker_id,
                page_limit=self.page_limit,
                on_events=self._on_events,
                on_overflow=self._on_overflow,
            )
            self._hubs[key] = hub
            muxes = self._muxes_of(runtime)
            task = asyncio.create_task(
                hub.run() if muxes is None else hub.start(muxes), name="yoi-sse-hub"
            )
            self._tasks[hub] = task
            task.add_done_callback(functools.partial(self._reap, key, hub))
        hub.joining += 1
        try:
            await hub.started.wait()
        except asyncio.CancelledError:
            hub.joining -= 1
            self._stop_if_idle(hub)  # everyone who waited left before the hub started
            raise
        hub.joining -= 1
        if hub.failure is not None:
            raise hub.failure
        hub.subscribers.add(subscription)
        assert hub.cursor is not None
        return hub, hub.cursor

    def leave(self, hub: Hub, subscription: Subscription) -> None:
        """Synchronous, so it runs even in a cancelled connection's cleanup: the last one out
        stops the reader at once."""
        hub.subscribers.discard(subscription)
        self._stop_if_idle(hub)

    def _muxes_of(self, runtime: Runtime) -> Muxes | None:
        if not self.multiplex or runtime.runtime_id in self._unmuxed:
            return None
        muxes = self._muxes.get(runtime.runtime_id)
        if muxes is None:
            first = runtime.event_mux()
            if first is None:
                self._unmuxed.add(runtime.runtime_id)
                return None
            muxes = Muxes(runtime, first, page_limit=self.page_limit, on_gone=self._gone)
            self._muxes[runtime.runtime_id] = muxes
        return muxes

    def _stop_if_idle(self, hub: Hub) -> None:
        if hub.subscribers or hub.joining:
            return
        self._gone(hub)
        hub.stopping = True
        task = self._tasks.get(hub)
        if task is not None:
            task.cancel()
        if hub.mux is not None:
            hub.mux.discard(hub)

    def _gone(self, hub: Hub) -> None:
        if self._hubs.get((hub.runtime.runtime_id, hub.worker_id)) is hub:
            del self._hubs[(hub.runtime.runtime_id, hub.worker_id)]

    def _reap(self, key: tuple[str, str], hub: Hub, _task: asyncio.Task[None]) -> None:
        task = self._tasks.pop(hub, None)
        if hub.mux is None and self._hubs.get(key) is hub:  # a mux's hub lives on in its mux
            del self._hubs[key]
        if task is not None and not task.cancelled():
            task.exception()  # retrieved: `run` handles its errors, this only marks it seen

    async def aclose(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(
            *tasks, *(muxes.aclose() for muxes in self._muxes.values()), return_exceptions=True
        )
        self._hubs.clear()
