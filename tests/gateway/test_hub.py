"""The fan-out hub and the stream generator against a scripted runtime: failures mid-stream,
cursor ordering, and a connection that leaves while its hub is still starting."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from gateway.hub import Hubs, cursor_position
from gateway.metrics import Metrics
from gateway.sse import follow
from runtime_worker.runtime import Runtime
from shared.errors import CursorExpired, RuntimeUnavailable, WorkerNotFound, YoiError
from shared.events import EventPage, TextDelta
from tests.gateway.sse_parser import SseParser

WORKER = "w"


def delta(cursor: str, text: str = "x") -> TextDelta:
    return TextDelta(cursor=cursor, worker_id=WORKER, ts=1.0, text=text)


class ScriptedRuntime:
    """Answers `events` and `tail` from a script: the hub's start (`after="now"`), its blocking
    reads (`tail`, or `events` with `wait_ms > 0`) and the connections' catch-up pages."""

    runtime_id = "scripted"

    def __init__(self, head: str = "5-0") -> None:
        self.head = head
        self.polls: asyncio.Queue[EventPage | YoiError] = asyncio.Queue()
        self.catch_up: list[EventPage | YoiError] = []
        self.started = asyncio.Event()
        self.caught_up = asyncio.Event()  # the last scripted catch-up answer was taken
        self.hold_start = asyncio.Event()
        self.hold_start.set()
        self.start_failures: list[YoiError] = []

    async def events(
        self, worker_id: str, *, after: str | None = None, limit: int = 100, wait_ms: int = 0
    ) -> EventPage:
        if after == "now":
            self.started.set()
            await self.hold_start.wait()
            if self.start_failures:
                raise self.start_failures.pop(0)
            return EventPage(events=[], cursor=self.head)
        if wait_ms > 0:
            answer = await self.polls.get()
        else:
            answer = (
                self.catch_up.pop(0) if self.catch_up else EventPage(events=[], cursor=after or "0")
            )
            if not self.catch_up:
                self.caught_up.set()
        if isinstance(answer, YoiError):
            raise answer
        return answer

    async def tail(self, worker_id: str, *, after: str, limit: int, wait_ms: int) -> EventPage:
        return await self.events(worker_id, after=after, limit=limit, wait_ms=max(wait_ms, 1))


def make_hubs(capacity: int = 100) -> tuple[Hubs, Metrics]:
    metrics = Metrics()
    hubs = Hubs(
        capacity=capacity,
        page_limit=capacity,
        on_events=metrics.saw_events,
        on_overflow=metrics.sse_slow_disconnects.inc,
    )
    return hubs, metrics


async def collect(stream: AsyncIterator[Any]) -> SseParser:
    parser = SseParser()
    async for item in stream:
        parser.feed(item if isinstance(item, bytes) else item.encode())
    return parser


def test_cursor_position_orders_numerically() -> None:
    assert cursor_position("10-0") > cursor_position("9-5")
    assert cursor_position("9-10") > cursor_position("9-9")
    assert cursor_position("0") == (0, 0) and cursor_position("7") == (7, 0)


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (CursorExpired("trimmed", oldest_cursor="7-0"), "cursor_expired"),
        (WorkerNotFound("expired"), "worker_not_found"),
    ],
)
async def test_a_failure_while_catching_up_is_an_error_frame_then_the_end(
    failure: YoiError, code: str
) -> None:
    runtime = ScriptedRuntime(head="9-0")
    runtime.catch_up = [failure]
    hubs, metrics = make_hubs()
    first = EventPage(events=[delta("1-0")], cursor="1-0")
    subscription = hubs.subscription()
    stream = follow(cast(Runtime, runtime), WORKER, first, subscription, hubs=hubs, metrics=metrics)
    parser = await asyncio.wait_for(collect(stream), 5)
    assert [(m.event, m.block_had_id) for m in parser.messages] == [
        ("text_delta", True),
        ("error", False),
    ]
    error = parser.messages[1].json()
    assert (error["type"], error["code"], error["worker_id"]) == ("error", code, WORKER)
    assert "cursor" not in error
    if code == "cursor_expired":
        assert error["oldest_cursor"] == "7-0"
    assert parser.last_event_id == "1-0"  # the error frame does not move the resume point
    assert len(hubs) == 0 and metrics.sse_clients._value.get() == 0


async def test_redis_away_while_catching_up_keeps_the_stream_and_reads_on_from_its_cursor() -> None:
    runtime = ScriptedRuntime(head="9-0")
    runtime.catch_up = [
        RuntimeUnavailable("redis went away"),
        EventPage(events=[delta("9-0", "b")], cursor="9-0"),
    ]
    hubs, metrics = make_hubs()
    first = EventPage(events=[delta("1-0", "a")], cursor="1-0")
    subscription = hubs.subscription()
    stream = follow(cast(Runtime, runtime), WORKER, first, subscription, hubs=hubs, metrics=metrics)
    task = asyncio.create_task(collect(stream))
    await asyncio.wait_for(runtime.caught_up.wait(), 5)
    # Once the catch-up is done, only a failure of the hub itself ends the stream.
    runtime.polls.put_nowait(CursorExpired("the hub fell behind", oldest_cursor="9-0"))
    parser = await asyncio.wait_for(task, 5)
    assert [(m.event, m.json().get("text")) for m in parser.messages] == [
        ("text_delta", "a"),
        ("text_delta", "b"),
        ("error", None),
    ]
    assert parser.last_event_id == "9-0"


async def test_a_hub_failure_reaches_every_connection_as_an_error_frame() -> None:
    runtime = ScriptedRuntime(head="1-0")
    hubs, metrics = make_hubs()
    subscriptions = [hubs.subscription() for _ in range(3)]
    first = EventPage(events=[], cursor="1-0")
    streams = [
        asyncio.create_task(
            collect(follow(cast(Runtime, runtime), WORKER, first, s, hubs=hubs, metrics=metrics))
        )
        for s in subscriptions
    ]
    await runtime.started.wait()
    runtime.polls.put_nowait(EventPage(events=[delta("2-0", "a")], cursor="2-0"))
    runtime.polls.put_nowait(CursorExpired("the hub fell behind", oldest_cursor="3-0"))
    parsers = await asyncio.wait_for(asyncio.gather(*streams), 5)
    for parser in parsers:
        assert [m.event for m in parser.messages] == ["text_delta", "error"]
        assert parser.messages[1].json()["oldest_cursor"] == "3-0"
    assert len(hubs) == 0


async def test_hub_events_at_or_before_the_last_sent_are_skipped() -> None:
    runtime = ScriptedRuntime(head="1-0")
    runtime.catch_up = []
    hubs, metrics = make_hubs()
    subscription = hubs.subscription()
    first = EventPage(events=[delta("1-0"), delta("3-0")], cursor="3-0")
    stream = follow(cast(Runtime, runtime), WORKER, first, subscription, hubs=hubs, metrics=metrics)
    task = asyncio.create_task(collect(stream))
    await runtime.started.wait()
    # The hub started at 1-0 and carries 2-0 and 3-0 again: both were already sent (or older).
    runtime.polls.put_nowait(
        EventPage(events=[delta("2-0"), delta("3-0"), delta("4-0")], cursor="4-0")
    )
    runtime.polls.put_nowait(WorkerNotFound("end of script"))
    parser = await asyncio.wait_for(task, 5)
    assert [m.last_event_id for m in parser.messages if m.event != "error"] == ["1-0", "3-0", "4-0"]


async def test_overflow_closes_only_the_slow_subscription() -> None:
    hubs, metrics = make_hubs(capacity=3)
    runtime = ScriptedRuntime(head="0-1")
    slow, fast = hubs.subscription(), hubs.subscription()
    hub, _ = await hubs.join(cast(Runtime, runtime), WORKER, slow)
    await hubs.join(cast(Runtime, runtime), WORKER, fast)
    runtime.polls.put_nowait(EventPage(events=[delta("1-0"), delta("2-0")], cursor="2-0"))
    assert [e.cursor for e in await asyncio.wait_for(fast.take(), 5)] == ["1-0", "2-0"]
    runtime.polls.put_nowait(EventPage(events=[delta("3-0"), delta("4-0")], cursor="4-0"))
    assert [e.cursor for e in await asyncio.wait_for(fast.take(), 5)] == ["3-0", "4-0"]
    assert slow.overflowed and slow.closed.is_set() and slow.lag == 0
    assert hub.subscribers == {fast} and metrics.sse_slow_disconnects._value.get() == 1
    hubs.leave(hub, fast)
    hubs.leave(hub, slow)
    assert len(hubs) == 0


async def test_leaving_while_the_hub_starts_stops_its_reader() -> None:
    hubs, _ = make_hubs()
    runtime = ScriptedRuntime()
    runtime.hold_start.clear()
    joining = asyncio.create_task(hubs.join(cast(Runtime, runtime), WORKER, hubs.subscription()))
    await runtime.started.wait()
    tasks = list(hubs._tasks.values())
    joining.cancel()
    with pytest.raises(asyncio.CancelledError):
        await joining
    assert len(hubs) == 0
    await asyncio.gather(*tasks, return_exceptions=True)
    assert all(task.cancelled() for task in tasks) and not hubs._tasks


async def test_a_failed_hub_is_replaced_for_the_next_joiner() -> None:
    hubs, _ = make_hubs()
    runtime = ScriptedRuntime()
    first = hubs.subscription()
    hub, _ = await hubs.join(cast(Runtime, runtime), WORKER, first)
    runtime.polls.put_nowait(WorkerNotFound("expired"))
    await asyncio.wait_for(first.closed.wait(), 5)
    assert isinstance(first.failure, WorkerNotFound)
    again, head = await hubs.join(cast(Runtime, runtime), WORKER, hubs.subscription())
    assert again is not hub and head == runtime.head
    await hubs.aclose()


async def test_redis_away_keeps_the_hub_and_it_reads_on_from_its_cursor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("gateway.hub.UNAVAILABLE_RETRY_S", 0.0)
    hubs, _ = make_hubs()
    runtime = ScriptedRuntime(head="1-0")
    subscription = hubs.subscription()
    hub, _ = await hubs.join(cast(Runtime, runtime), WORKER, subscription)
    for _ in range(3):  # blackholed or refused reads: the subscriber stays, nothing is sent
        runtime.polls.put_nowait(RuntimeUnavailable("redis went away"))
    runtime.polls.put_nowait(EventPage(events=[delta("2-0"), delta("3-0")], cursor="3-0"))
    assert [e.cursor for e in await asyncio.wait_for(subscription.take(), 5)] == ["2-0", "3-0"]
    assert hub.failure is None and hub.subscribers == {subscription}
    assert not subscription.closed.is_set()
    await hubs.aclose()


async def test_redis_away_when_the_hub_starts_keeps_the_stream_until_it_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stream opened just before Redis went away: its hub's first read fails, and the
    connection waits (beating) for the hub rather than ending with an error."""
    monkeypatch.setattr("gateway.hub.UNAVAILABLE_RETRY_S", 0.0)
    hubs, _ = make_hubs()
    runtime = ScriptedRuntime(head="4-0")
    runtime.start_failures = [RuntimeUnavailable("redis went away") for _ in range(3)]
    subscription = hubs.subscription()
    hub, head = await asyncio.wait_for(hubs.join(cast(Runtime, runtime), WORKER, subscription), 5)
    assert head == "4-0" and not runtime.start_failures
    assert hub.failure is None and not subscription.closed.is_set()
    runtime.polls.put_nowait(EventPage(events=[delta("5-0")], cursor="5-0"))
    assert [e.cursor for e in await asyncio.wait_for(subscription.take(), 5)] == ["5-0"]
    await hubs.aclose()


def test_error_frame_payload_is_json_on_one_line() -> None:
    from gateway.sse import error_frame

    encoded = error_frame(WORKER, CursorExpired("a\nb", oldest_cursor="1-0")).encode().decode()
    lines = encoded.strip("\n").split("\n")
    assert lines[0] == "event: error" and lines[1].startswith("data: ") and len(lines) == 2
    assert json.loads(lines[1][6:])["message"] == "a\nb"
