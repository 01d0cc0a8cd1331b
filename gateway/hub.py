"""Fan-out: one store reader per Worker, however many stream connections follow it.

A thousand browsers on one Worker must not mean a thousand Redis readers. The first connection
to a Worker starts its `Hub`: one task following `Runtime.tail` (a blocking read per wake) and
handing every page to each connection's bounded `Subscription`. The task stops as soon as the
last connection leaves: it is cancelled, and it is told to stop as well, so that a cancellation
a library swallows (redis-py's write under `wait_for` on Python 3.11) still ends it after the
call it is in; `Hubs.readers` counts tasks until they have really ended.

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
                    self._on_events(self.runtime.runtime_id, page.events)
                    for subscription in list(self.subscribers):
                        if not subscription.deliver(page.events):
                            self.subscribers.discard(subscription)
                            self._on_overflow()
                self.cursor = page.cursor
                await asyncio.sleep(0)  # let connections drain between pages of a burst
        except YoiError as exc:
            self._fail(exc)
        except Exception as exc:
            log.error("event reader of a worker failed: %s", type(exc).__name__)
            self._fail(RuntimeUnavailable("the event stream failed"))

    async def _head(self) -> str:
        """The Worker's newest cursor: the hub starts there, joiners catch up on their own and
        the hub only carries news. Redis away at the start is waited out as it is later: the
        joiners' streams keep beating while they wait for `started`."""
        while True:
            try:
                return (await self.runtime.events(self.worker_id, after=NOW, limit=1)).cursor
            except RuntimeUnavailable:
                await asyncio.sleep(UNAVAILABLE_RETRY_S)

    def _fail(self, error: YoiError) -> None:
        self.failure = error
        for subscription in self.subscribers:
            subscription.fail(error)
        self.subscribers.clear()
        self.started.set()


class Hubs:
    """Every live hub, keyed by (runtime, worker); owns their tasks."""

    def __init__(
        self,
        *,
        capacity: int,
        page_limit: int,
        on_events: Callable[[str, Sequence[Event]], None],
        on_overflow: Callable[[], None],
    ) -> None:
        self.capacity = capacity
        self.page_limit = page_limit
        self._on_events = on_events
        self._on_overflow = on_overflow
        self._hubs: dict[tuple[str, str], Hub] = {}
        self._tasks: dict[Hub, asyncio.Task[None]] = {}

    def __len__(self) -> int:
        return len(self._hubs)

    def readers(self) -> int:
        """Reader tasks still running, including those told to stop that have not ended yet."""
        return len(self._tasks)

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
            task = asyncio.create_task(hub.run(), name="yoi-sse-hub")
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

    def _stop_if_idle(self, hub: Hub) -> None:
        if hub.subscribers or hub.joining:
            return
        if self._hubs.get((hub.runtime.runtime_id, hub.worker_id)) is hub:
            del self._hubs[(hub.runtime.runtime_id, hub.worker_id)]
        hub.stopping = True
        task = self._tasks.get(hub)
        if task is not None:
            task.cancel()

    def _reap(self, key: tuple[str, str], hub: Hub, _task: asyncio.Task[None]) -> None:
        task = self._tasks.pop(hub, None)
        if self._hubs.get(key) is hub:
            del self._hubs[key]
        if task is not None and not task.cancelled():
            task.exception()  # retrieved: `run` handles its errors, this only marks it seen

    async def aclose(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._hubs.clear()
