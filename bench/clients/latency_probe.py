"""POST an input, time until its first `text_delta` reaches the client: over one SSE
connection per Worker, or by long-polling the events API. Inputs go one at a time, round-robin
over Workers, each waiting for its run to finish (when the server reports that) before the next
is sent, so the samples measure the idle path, not a queue."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from bench.rawhttp import Connection, HttpError, SseStream
from bench.yoi_api import events_path, inputs_path, stream_path

INPUT_TIMEOUT_S = 5.0
MAX_ERRORS = 20
TEXT = "hello there"


@dataclass
class Samples:
    seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _input_id(tag: str, index: int) -> str:
    return f"{tag}-{index:05d}-{uuid.uuid4().hex[:8]}"


def _body(input_id: str) -> dict[str, str]:
    return {"text": TEXT, "input_id": input_id, "strategy": "enqueue"}


async def _longpoll_one(
    conn: Connection, worker_id: str, input_id: str, finish: str | None
) -> float:
    start = time.perf_counter()
    accepted = await conn.json("POST", inputs_path(worker_id), _body(input_id))
    cursor = accepted["cursor"]
    first: float | None = None
    deadline = start + INPUT_TIMEOUT_S
    while time.perf_counter() < deadline:
        page = await conn.json("GET", events_path(worker_id, cursor, wait_ms=2000))
        seen = time.perf_counter()
        for event in page["events"]:
            if event.get("input_id") != input_id:
                continue
            if first is None and event["type"] == "text_delta":
                first = seen - start
            if first is not None and (finish is None or event["type"] == finish):
                return first
        cursor = page["cursor"]
    raise TimeoutError(f"input {input_id}: no {'text_delta' if first is None else finish}")


async def longpoll_samples(
    conn: Connection,
    worker_ids: list[str],
    count: int,
    warmup: int,
    finish: str | None,
    tag: str,
    max_pause_s: float = 0.0,
) -> Samples:
    """`count` timed inputs (after `warmup` untimed ones) read back by long-polling.

    `max_pause_s` waits a random, untimed while before each input: back-to-back inputs would
    otherwise arrive in lockstep with a polling consumer's loop (always just after a poll) and
    measure the phase, not the consumer; a person's input lands at a random phase."""
    samples = Samples()
    for index in range(warmup + count):
        worker_id = worker_ids[index % len(worker_ids)]
        if max_pause_s:
            await asyncio.sleep(random.uniform(0.0, max_pause_s))
        try:
            elapsed = await _longpoll_one(conn, worker_id, _input_id(tag, index), finish)
        except (TimeoutError, OSError, ValueError, KeyError, HttpError) as exc:
            samples.errors.append(f"{type(exc).__name__}: {exc}")
            if len(samples.errors) >= MAX_ERRORS:
                break
            continue
        if index >= warmup:
            samples.seconds.append(elapsed)
    return samples


@dataclass
class _Waiter:
    first: asyncio.Future[float]
    done: asyncio.Future[float]


class SseHub:
    """One SSE subscription per Worker; a reader task per stream hands each awaited input's
    first delta (and finish) to the coroutine that sent it, stamped on arrival."""

    def __init__(self, host: str, port: int, finish: str | None) -> None:
        self.host = host
        self.port = port
        self.finish = finish
        self._waiters: dict[str, _Waiter] = {}
        self._streams: list[SseStream] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.reader_errors: list[str] = []

    async def open(self, cursors: dict[str, str]) -> None:
        for worker_id, cursor in cursors.items():
            stream = SseStream(self.host, self.port, stream_path(worker_id, cursor))
            await stream.open()
            self._streams.append(stream)
            task = asyncio.create_task(self._read(stream))
            self._tasks.add(task)

    async def _read(self, stream: SseStream) -> None:
        try:
            async for message in stream.events():
                if message.event != "text_delta" and message.event != self.finish:
                    continue
                seen = time.perf_counter()
                event: dict[str, Any] = message.json()
                waiter = self._waiters.get(str(event.get("input_id")))
                if waiter is None:
                    continue
                target = waiter.first if message.event == "text_delta" else waiter.done
                if not target.done():
                    target.set_result(seen)
        except (OSError, ValueError) as exc:
            self.reader_errors.append(f"{type(exc).__name__}: {exc}")

    async def one(self, conn: Connection, worker_id: str, input_id: str) -> float:
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop.create_future(), loop.create_future())
        self._waiters[input_id] = waiter
        try:
            start = time.perf_counter()
            await conn.json("POST", inputs_path(worker_id), _body(input_id))
            first = await asyncio.wait_for(waiter.first, INPUT_TIMEOUT_S)
            if self.finish is not None:
                await asyncio.wait_for(waiter.done, INPUT_TIMEOUT_S)
            return first - start
        finally:
            del self._waiters[input_id]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(stream.close() for stream in self._streams))


async def sse_samples(
    hub: SseHub, conn: Connection, worker_ids: list[str], count: int, warmup: int, tag: str
) -> Samples:
    """`count` timed inputs (after `warmup` untimed ones) seen on the hub's SSE streams."""
    samples = Samples()
    for index in range(warmup + count):
        worker_id = worker_ids[index % len(worker_ids)]
        try:
            elapsed = await hub.one(conn, worker_id, _input_id(tag, index))
        except (TimeoutError, OSError, ValueError, KeyError, HttpError) as exc:
            samples.errors.append(f"{type(exc).__name__}: {exc}")
            if len(samples.errors) >= MAX_ERRORS:
                break
            continue
        if index >= warmup:
            samples.seconds.append(elapsed)
    return samples
