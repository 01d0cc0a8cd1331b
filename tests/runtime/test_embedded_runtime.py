"""The embedded Runtime end to end: real host, real echo provider, memory store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from runtime_worker import Runtime
from runtime_worker.profiles import Profile, ProfileRegistry
from shared.errors import (
    InvalidInput,
    PayloadTooLarge,
    ScopeConflict,
    WorkerBusy,
    WorkerNotFound,
    WorkerStopped,
)
from shared.events import Event, RunFinished
from shared.ids import new_id
from shared.models import CreateWorker, RunResult, ScopeEntry, SendInput, Strategy, WorkerState
from shared.settings import Settings
from tests.helpers import wait_until


def _registry() -> ProfileRegistry:
    registry = ProfileRegistry()
    registry.add(
        Profile(name="quick", turn_timeout_s=0.3, transcript_maxlen=6, prompt="assistant.md")
    )
    registry.add(Profile(name="broken", provider="no-such-provider"))
    registry.add(Profile(name="chaos", provider="chaos"))  # failure hooks, chosen by name
    return registry


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    settings = Settings(echo_delay_ms=15, flush_interval_ms=5, max_input_chars=1000)
    async with Runtime.embedded(settings, profiles=_registry()) as rt:
        yield rt


async def _create(rt: Runtime, profile: str | None = None) -> str:
    detail = await rt.create_worker(CreateWorker(display_name="bob", profile=profile))
    return detail.worker_id


async def _until_finished(
    rt: Runtime, worker_id: str, input_id: str, after: str = "0"
) -> list[Event]:
    """Every event after `after` up to this input's `run_finished`."""
    seen: list[Event] = []
    async with asyncio.timeout(10):
        while True:
            page = await rt.events(worker_id, after=after, wait_ms=1000)
            seen.extend(page.events)
            after = page.cursor
            if any(e.type == "run_finished" and e.input_id == input_id for e in page.events):
                return seen


def _finished(events: list[Event]) -> list[RunFinished]:
    return [e for e in events if isinstance(e, RunFinished)]


async def test_answer_streams_in_pieces_and_lands_in_transcript(runtime: Runtime) -> None:
    wid = await _create(runtime)
    accepted = await runtime.send_input(wid, SendInput(text="one two three four five"))
    events = await _until_finished(runtime, wid, accepted.input_id, accepted.cursor)
    kinds = [e.type for e in events if e.type != "state_changed"]
    assert kinds[0:2] == ["user_message", "run_started"]
    assert kinds[-3:] == ["text_done", "usage", "run_finished"]
    deltas = [e.text for e in events if e.type == "text_delta"]
    assert len(deltas) >= 2
    assert "one two three four five" in "".join(deltas)
    transcript = await runtime.transcript(wid)
    assert [e.role.value for e in transcript.entries] == ["user", "assistant"]
    assert transcript.entries[1].text == "".join(deltas)
    usage = (await runtime.get_worker(wid)).usage
    assert usage.runs == 1 and usage.output_tokens > 0
    assert (await runtime.usage()).runs >= 1


async def test_concurrent_reject_gives_one_run_and_one_busy(runtime: Runtime) -> None:
    wid = await _create(runtime)
    results = await asyncio.gather(
        runtime.send_input(wid, SendInput(text="a", strategy=Strategy.REJECT)),
        runtime.send_input(wid, SendInput(text="b", strategy=Strategy.REJECT)),
        return_exceptions=True,
    )
    accepted = [r for r in results if not isinstance(r, BaseException)]
    busy = [r for r in results if isinstance(r, WorkerBusy)]
    assert len(accepted) == 1 and len(busy) == 1
    events = await _until_finished(runtime, wid, accepted[0].input_id)
    assert len(_finished(events)) == 1


async def test_enqueue_keeps_order(runtime: Runtime) -> None:
    wid = await _create(runtime)
    sent = [
        await runtime.send_input(wid, SendInput(text=f"m{i}", strategy=Strategy.ENQUEUE))
        for i in range(3)
    ]
    events = await _until_finished(runtime, wid, sent[-1].input_id)
    assert [e.input_id for e in _finished(events)] == [s.input_id for s in sent]
    assert all(e.result is RunResult.FINISHED for e in _finished(events))


async def test_interrupt_cancels_then_runs(runtime: Runtime) -> None:
    wid = await _create(runtime)
    first = await runtime.send_input(wid, SendInput(text="long " * 30))
    await _wait_for_delta(runtime, wid, first.input_id)
    second = await runtime.send_input(wid, SendInput(text="now", strategy=Strategy.INTERRUPT))
    events = await _until_finished(runtime, wid, second.input_id)
    results = {e.input_id: e.result for e in _finished(events)}
    assert results == {first.input_id: RunResult.CANCELLED, second.input_id: RunResult.FINISHED}


async def _wait_for_delta(rt: Runtime, wid: str, input_id: str) -> None:
    async def started() -> bool:
        page = await rt.events(wid, limit=1000)
        return any(e.type == "text_delta" and e.input_id == input_id for e in page.events)

    await wait_until(started, timeout_s=5, what="the first text delta")


async def test_cancel_mid_stream_keeps_partial_answer_marked(runtime: Runtime) -> None:
    wid = await _create(runtime)
    accepted = await runtime.send_input(wid, SendInput(text="word " * 60))
    await _wait_for_delta(runtime, wid, accepted.input_id)
    result = await runtime.cancel(wid)
    assert result.cancelled
    events = await _until_finished(runtime, wid, accepted.input_id, accepted.cursor)
    assert _finished(events)[0].result is RunResult.CANCELLED
    finished_at = [e.type for e in events].index("run_finished")
    assert "text_delta" not in [e.type for e in events[finished_at:]]
    answer = (await runtime.transcript(wid)).entries[-1]
    assert answer.result is RunResult.CANCELLED and answer.text
    assert answer.text in "You said: " + "word " * 60
    assert not (await runtime.cancel(wid)).cancelled  # after completion: a no-op


async def test_cancel_before_pickup_never_calls_provider(runtime: Runtime) -> None:
    wid = await _create(runtime)
    first = await runtime.send_input(wid, SendInput(text="word " * 40))
    queued = await runtime.send_input(wid, SendInput(text="queued", strategy=Strategy.ENQUEUE))
    await runtime.cancel(wid)  # cancels the head (the running one)
    await runtime.cancel(wid)  # idempotent while it is being cancelled
    events = await _until_finished(runtime, wid, queued.input_id)
    results = {e.input_id: e.result for e in _finished(events)}
    assert results[first.input_id] is RunResult.CANCELLED
    assert results[queued.input_id] is RunResult.FINISHED


async def test_turn_timeout_gives_timed_out(runtime: Runtime) -> None:
    wid = await _create(runtime, profile="quick")
    accepted = await runtime.send_input(wid, SendInput(text="slow " * 50))
    events = await _until_finished(runtime, wid, accepted.input_id)
    assert _finished(events)[0].result is RunResult.TIMED_OUT
    assert any(e.type == "error" and e.code == "timeout" for e in events)


@pytest.mark.parametrize("text", ["/crash", "/fail please", "/fail-mid now", "/slow down"])
async def test_hook_texts_are_just_text_under_defaults(runtime: Runtime, text: str) -> None:
    wid = await _create(runtime)
    accepted = await runtime.send_input(wid, SendInput(text=text))
    events = await _until_finished(runtime, wid, accepted.input_id, accepted.cursor)
    assert _finished(events)[0].result is RunResult.FINISHED
    assert [e.text for e in events if e.type == "text_done"] == [f"You said: {text}"]


async def test_provider_error_fails_the_run_and_worker_goes_on(runtime: Runtime) -> None:
    wid = await _create(runtime, profile="chaos")
    bad = await runtime.send_input(wid, SendInput(text="/fail please"))
    events = await _until_finished(runtime, wid, bad.input_id)
    assert _finished(events)[0].result is RunResult.FAILED
    good = await runtime.send_input(wid, SendInput(text="fine"))
    events = await _until_finished(runtime, wid, good.input_id, good.cursor)
    assert _finished(events)[0].result is RunResult.FINISHED


async def test_mid_run_subscriber_and_resumer_see_every_event_once(runtime: Runtime) -> None:
    wid = await _create(runtime)
    start = (await runtime.get_worker(wid)).cursor
    accepted = await runtime.send_input(wid, SendInput(text="a b c d e f g h i j k l"))
    await _wait_for_delta(runtime, wid, accepted.input_id)
    detail = await runtime.get_worker(wid)
    assert detail.in_flight is not None and detail.in_flight.text
    partial, cursor = detail.in_flight.text, detail.in_flight.cursor

    async def follow(after: str, stop_after: int | None = None) -> list[Event]:
        got: list[Event] = []
        async for event in runtime.subscribe(wid, after=after):
            got.append(event)
            if event.type == "run_finished" or (stop_after is not None and len(got) >= stop_after):
                return got
        return got

    joined = await asyncio.wait_for(follow(cursor), 10)
    text = partial + "".join(e.text for e in joined if e.type == "text_delta")
    assert text == "You said: a b c d e f g h i j k l"

    first_half = await asyncio.wait_for(follow(start, stop_after=4), 10)
    second_half = await asyncio.wait_for(follow(first_half[-1].cursor), 10)
    everything = (await runtime.events(wid, after=start, limit=1000)).events
    resumed = first_half + second_half
    assert [e.cursor for e in resumed] == [e.cursor for e in everything][: len(resumed)]
    assert len({e.cursor for e in resumed}) == len(resumed)


async def test_transcript_stays_within_bound(runtime: Runtime) -> None:
    wid = await _create(runtime, profile="quick")
    for i in range(6):
        accepted = await runtime.send_input(wid, SendInput(text=f"q{i}"))
        await _until_finished(runtime, wid, accepted.input_id, accepted.cursor)
    page = await runtime.transcript(wid, limit=100)
    assert len(page.entries) <= 6 and page.entries[-1].text == "You said: q5"


async def test_bad_input_is_typed_and_changes_nothing(runtime: Runtime) -> None:
    wid = await _create(runtime)
    before = (await runtime.get_worker(wid)).cursor
    with pytest.raises(InvalidInput):
        await runtime.send_input(wid, SendInput(text="   "))
    with pytest.raises(PayloadTooLarge):
        await runtime.send_input(wid, SendInput(text="x" * 1001))
    with pytest.raises(WorkerNotFound):
        await runtime.send_input(new_id(), SendInput(text="hi"))
    with pytest.raises(InvalidInput):
        await runtime.send_input("../etc/passwd", SendInput(text="hi"))
    with pytest.raises(InvalidInput):
        await runtime.create_worker(CreateWorker(display_name="x", profile="nope"))
    with pytest.raises(InvalidInput):
        await runtime.events(wid, after="garbage")
    detail = await runtime.get_worker(wid)
    assert detail.cursor == before and detail.diagnostics.queue_depth == 0
    assert len(await runtime.list_workers()) == 1


async def test_scope_conflict_delegation_and_release_on_stop(runtime: Runtime) -> None:
    write = [ScopeEntry(path="/repo", mode="write")]
    parent = await runtime.create_worker(CreateWorker(display_name="parent", scope=write))
    with pytest.raises(ScopeConflict):
        await runtime.create_worker(CreateWorker(display_name="rival", scope=write))
    child = await runtime.create_worker(
        CreateWorker(
            display_name="child",
            scope=[ScopeEntry(path="/repo/docs", mode="write")],
            delegated_from=parent.worker_id,
        )
    )
    assert child.delegated_from == parent.worker_id
    with pytest.raises(ScopeConflict):
        await runtime.create_worker(
            CreateWorker(
                display_name="greedy",
                scope=[ScopeEntry(path="/elsewhere", mode="read")],
                delegated_from=parent.worker_id,
            )
        )
    count = len(await runtime.list_workers())
    await runtime.stop_worker(child.worker_id)
    stopped = await runtime.stop_worker(parent.worker_id)
    assert stopped.state is WorkerState.STOPPED
    with pytest.raises(WorkerStopped):
        await runtime.send_input(parent.worker_id, SendInput(text="hi"))
    await runtime.create_worker(CreateWorker(display_name="rival", scope=write))
    assert len(await runtime.list_workers()) == count + 1


async def test_same_input_id_twice_one_run(runtime: Runtime) -> None:
    wid = await _create(runtime)
    first = await runtime.send_input(wid, SendInput(text="once", input_id="key-1"))
    again = await runtime.send_input(wid, SendInput(text="once", input_id="key-1"))
    assert first == again
    events = await _until_finished(runtime, wid, "key-1")
    follow = await runtime.events(wid, after=events[-1].cursor, wait_ms=100)
    assert len(_finished(events + follow.events)) == 1


async def test_misconfigured_provider_fails_the_run_not_the_worker(runtime: Runtime) -> None:
    wid = await _create(runtime, profile="broken")
    accepted = await runtime.send_input(wid, SendInput(text="hello"))
    events = await _until_finished(runtime, wid, accepted.input_id)
    assert _finished(events)[0].result is RunResult.FAILED
    assert any(e.type == "error" and e.code == "invalid_input" for e in events)
    assert (await runtime.get_worker(wid)).state is WorkerState.IDLE
