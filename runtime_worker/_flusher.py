"""`Flusher`: a provider's token stream turned into few `text_delta` writes.

Apart from the turn runner because it is the one piece with its own timing (a write budget raced
against the next chunk) and its own accounting (tokens spent so far, for cancelled runs).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from runtime_worker._hosted import Hosted
from runtime_worker.providers.base import Provider, TextChunk, TurnRequest, UsageChunk
from runtime_worker.store.base import QueuedInput, Store
from shared.events import TextDelta
from shared.timeutil import monotonic_s, now_s

_END = object()

FLUSH_BURST = 20
"""Writes the budget holds at most, and what a turn starts with: a short answer (up to about 35
chunks at 80 tokens/s) goes out chunk by chunk, its last text never held for the stream's end
(measured: a 20-token answer from llama-server at 12 ms a token reached the client 5 % slower
than directly with a burst of 3); a stream slower than one chunk per interval, or one pausing (a
model thinking, a tool call), spends none of its chunks' time waiting. A long stream costs the
burst once, then one write per interval."""


class WriteBudget:
    """A token bucket of `text_delta` writes: `burst` at most, refilled at one per `interval_s`
    of time spent not writing. A stream slower than the refill goes out chunk by chunk; a faster
    one is held to one write per interval (plus the burst once); and a slow store lowers the
    write rate instead of queueing writes (its write time earns nothing). An interval of 0 means
    no budget: every chunk is written as it comes."""

    def __init__(self, interval_s: float, now: float, *, burst: int = FLUSH_BURST) -> None:
        self.interval, self.burst = interval_s, float(max(1, burst))
        self.tokens, self.stamp = self.burst, now  # full: a turn's first chunks are never held

    def _level(self, now: float) -> float:
        if self.interval <= 0:
            return self.burst
        earned = max(0.0, now - self.stamp) / self.interval
        return min(self.burst, self.tokens + earned)

    def wait_s(self, now: float) -> float:
        """How long until a write is allowed (0: now)."""
        missing = 1.0 - self._level(now)
        return 0.0 if missing <= 0 else missing * self.interval

    def spend(self, now: float) -> None:
        """A write starts at `now` (call only when `wait_s(now)` is 0)."""
        self.tokens, self.stamp = self._level(now) - 1.0, now

    def rested(self, now: float) -> None:
        """The write finished at `now`: the refill resumes from here, not from its start."""
        self.stamp = max(self.stamp, now)


class Flusher:
    """Coalesces text chunks into `text_delta` events under a `WriteBudget`: a chunk goes out
    at once while the budget allows, later ones wait for its refill (every chunk that came
    meanwhile goes in the same write), so a fast token stream costs a few writes, not one each,
    and a slow one is not held back."""

    def __init__(
        self,
        store: Store,
        worker_id: str,
        hosted: Hosted,
        item: QueuedInput,
        run_id: str,
        *,
        interval_s: float,
        burst: int = FLUSH_BURST,
        clock: Callable[[], float] = monotonic_s,
        ahead: bool = False,
    ) -> None:
        self.store, self.worker_id, self.hosted = store, worker_id, hosted
        self.item, self.run_id = item, run_id
        self.ahead = ahead  # a run started before its take answered (`Store.take_ahead`)
        self.written = 0  # writes the store took
        self.pending: list[str] = []
        self.clock = clock
        self.budget = WriteBudget(interval_s, clock(), burst=burst)
        self.usage = UsageChunk(0, 0)  # the provider's last running total
        self.uncounted = 0  # text chunks seen since that total

    def counted(self) -> UsageChunk:
        """What the turn has cost so far, so a cancelled or failed run is billed too: the
        provider's last total plus one output token per text chunk it has not counted yet."""
        return UsageChunk(self.usage.input_tokens, self.usage.output_tokens + self.uncounted)

    def _take(self, chunk: object) -> None:
        if isinstance(chunk, TextChunk) and chunk.text:
            self.pending.append(chunk.text)
            self.uncounted += 1
        elif isinstance(chunk, UsageChunk):
            self.usage, self.uncounted = chunk, 0

    async def pump(self, provider: Provider, request: TurnRequest) -> UsageChunk:
        """Stream the provider's answer; the text still pending at its end is left for
        `tail()` (written with the run's final events, in the same step)."""
        queue: asyncio.Queue[object] = asyncio.Queue()

        async def produce() -> None:
            try:
                async for chunk in provider.stream(request):
                    queue.put_nowait(chunk)
            finally:
                queue.put_nowait(_END)

        producer = asyncio.create_task(produce(), name="yoi-provider")
        budget = self.budget
        try:
            ended = False
            while not ended:
                chunk: object = None
                if not self.pending:
                    chunk = await queue.get()
                else:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(budget.wait_s(self.clock())):
                            chunk = await queue.get()
                # Everything already queued goes in the same write (a write or a slow wake-up
                # lets chunks pile up): one look at the queue, no waiting.
                while chunk is not _END:
                    self._take(chunk)
                    if queue.empty():
                        break
                    chunk = queue.get_nowait()
                ended = chunk is _END
                if ended or not self.pending:
                    continue
                now = self.clock()
                if budget.wait_s(now) <= 0:
                    budget.spend(now)
                    await self.flush()
                    budget.rested(self.clock())
            await producer  # re-raise the provider's error, if any
        finally:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await producer
        return self.counted()

    async def flush(self) -> None:
        events = self.tail()
        await self.store.append_events(
            self.worker_id, self.hosted.epoch, events, run_id=self.run_id, ahead=self.ahead
        )
        self.written += 1

    def tail(self) -> tuple[TextDelta, ...]:
        """The pending text as a delta (none when nothing is pending), counted as sent."""
        if not self.pending:
            return ()
        text = "".join(self.pending)
        self.pending.clear()
        self.hosted.text.append(text)
        delta = TextDelta(
            worker_id=self.worker_id,
            ts=now_s(),
            run_id=self.run_id,
            input_id=self.item.input_id,
            text=text,
        )
        return (delta,)
