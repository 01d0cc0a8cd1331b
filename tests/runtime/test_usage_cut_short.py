"""A run cut short still costs tokens: cancelled, failed and timed-out runs record what streamed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from runtime_worker import Runtime
from runtime_worker.profiles import Profile, ProfileRegistry
from runtime_worker.providers.echo import split_pieces
from shared.events import Event
from shared.models import CreateWorker, RunResult, SendInput
from shared.settings import Settings
from tests.helpers import wait_until


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    registry = ProfileRegistry()
    registry.add(Profile(name="quick", turn_timeout_s=0.3))
    registry.add(Profile(name="chaos", provider="chaos"))  # failure hooks, chosen by name
    settings = Settings(echo_delay_ms=15, flush_interval_ms=5)
    async with Runtime.embedded(settings, profiles=registry) as rt:
        yield rt


async def _finish(rt: Runtime, worker_id: str, input_id: str, after: str) -> list[Event]:
    seen: list[Event] = []
    async with asyncio.timeout(10):
        while not any(e.type == "run_finished" and e.input_id == input_id for e in seen):
            page = await rt.events(worker_id, after=after, wait_ms=1000)
            seen.extend(page.events)
            after = page.cursor
    return seen


def _result(events: list[Event]) -> RunResult:
    (finished,) = [e for e in events if e.type == "run_finished"]
    return RunResult(getattr(finished, "result"))  # noqa: B009 - Event is a union


def _pieces(events: list[Event]) -> int:
    """Echo pieces streamed: one output token each (what the echo provider bills)."""
    text = "".join(getattr(e, "text", "") for e in events if e.type == "text_delta")
    return len(text.split())


async def test_cancelled_run_records_its_streamed_tokens(runtime: Runtime) -> None:
    wid = (await runtime.create_worker(CreateWorker(display_name="c"))).worker_id
    accepted = await runtime.send_input(wid, SendInput(text="word " * 80))

    async def streaming() -> bool:
        page = await runtime.events(wid, after=accepted.cursor, limit=1000)
        return sum(1 for e in page.events if e.type == "text_delta") >= 2

    await wait_until(streaming, timeout_s=5, what="two text deltas")
    await runtime.cancel(wid)
    events = await _finish(runtime, wid, accepted.input_id, accepted.cursor)
    assert _result(events) is RunResult.CANCELLED
    usage = (await runtime.get_worker(wid)).usage
    assert usage.output_tokens >= _pieces(events) > 0
    assert usage.output_tokens < len(
        split_pieces("You said: " + "word " * 80)
    )  # only what streamed


async def test_failed_mid_stream_run_records_its_tokens(runtime: Runtime) -> None:
    worker = CreateWorker(display_name="f", profile="chaos")
    wid = (await runtime.create_worker(worker)).worker_id
    accepted = await runtime.send_input(wid, SendInput(text="/fail-mid now"))
    events = await _finish(runtime, wid, accepted.input_id, accepted.cursor)
    assert _result(events) is RunResult.FAILED
    assert (await runtime.get_worker(wid)).usage.output_tokens == 1


async def test_timed_out_run_records_its_tokens(runtime: Runtime) -> None:
    wid = (await runtime.create_worker(CreateWorker(display_name="t", profile="quick"))).worker_id
    accepted = await runtime.send_input(wid, SendInput(text="slow " * 60))
    events = await _finish(runtime, wid, accepted.input_id, accepted.cursor)
    assert _result(events) is RunResult.TIMED_OUT
    assert (await runtime.get_worker(wid)).usage.output_tokens >= _pieces(events) > 0
