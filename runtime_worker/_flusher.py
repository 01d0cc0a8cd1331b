"""`Flusher`: a provider's token stream turned into few `text_delta` writes.

Apart from the turn runner because it is the one piece with its own timing (a flush deadline
raced against the next chunk) and its own accounting (tokens spent so far, for cancelled runs).
"""

from __future__ import annotations

import asyncio
import contextlib

from runtime_worker._hosted import Hosted
from runtime_worker.providers.base import Provider, TextChunk, TurnRequest, UsageChunk
from runtime_worker.store.base import QueuedInput, Store
from shared.events import TextDelta
from shared.timeutil import monotonic_s, now_s

_END = object()


class Flusher:
    """Coalesces text chunks into `text_delta` events: the first chunk goes out at once, later
    ones at most every `interval_s`, so a token stream costs a few writes, not one each."""

    def __init__(
        self,
        store: Store,
        worker_id: str,
        hosted: Hosted,
        item: QueuedInput,
        run_id: str,
        *,
        interval_s: float,
    ) -> None:
        self.store, self.worker_id, self.hosted = store, worker_id, hosted
        self.item, self.run_id = item, run_id
        self.pending: list[str] = []
        self.interval = interval_s
        self.usage = UsageChunk(0, 0)  # the provider's last running total
        self.uncounted = 0  # text chunks seen since that total

    def counted(self) -> UsageChunk:
        """What the turn has cost so far, so a cancelled or failed run is billed too: the
        provider's last total plus one output token per text chunk it has not counted yet."""
        return UsageChunk(self.usage.input_tokens, self.usage.output_tokens + self.uncounted)

    async def pump(self, provider: Provider, request: TurnRequest) -> UsageChunk:
        queue: asyncio.Queue[object] = asyncio.Queue()

        async def produce() -> None:
            try:
                async for chunk in provider.stream(request):
                    queue.put_nowait(chunk)
            finally:
                queue.put_nowait(_END)

        producer = asyncio.create_task(produce(), name="yoi-provider")
        try:
            next_flush = 0.0
            while True:
                timeout = max(0.0, next_flush - monotonic_s()) if self.pending else None
                chunk: object = None
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        chunk = await queue.get()
                if chunk is _END:
                    break
                if isinstance(chunk, TextChunk) and chunk.text:
                    self.pending.append(chunk.text)
                    self.uncounted += 1
                elif isinstance(chunk, UsageChunk):
                    self.usage, self.uncounted = chunk, 0
                if self.pending and monotonic_s() >= next_flush:
                    await self.flush()
                    next_flush = monotonic_s() + self.interval
            await producer  # re-raise the provider's error, if any
        finally:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await producer
        return self.counted()

    async def flush(self) -> None:
        events = self.tail()
        await self.store.append_events(
            self.worker_id, self.hosted.epoch, events, run_id=self.run_id
        )

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
