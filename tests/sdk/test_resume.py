"""Streams that resume by themselves: cut mid-answer by a TCP proxy, the SDK reconnects with
`Last-Event-ID` and yields every event exactly once; a runtime process killed mid-answer makes
the run start again as attempt 2, and the answer keeps only that attempt's text."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from gateway.client import AsyncClient, Client
from shared.events import Event
from tests.cli.support import finish
from tests.helpers import wait_until_sync
from tests.sdk.conftest import TOKEN, Gateway
from tests.tcp_proxy import CuttingProxy

pytestmark = pytest.mark.slow

TEXT = " ".join(f"w{i}" for i in range(20))  # 20 pieces at 100 ms


@pytest.fixture
def proxy(slow_gateway: Gateway) -> Iterator[CuttingProxy]:
    cutting = CuttingProxy(slow_gateway.port, cut_after=3)
    try:
        yield cutting
    finally:
        cutting.close()


def of_input(events: list[Event], input_id: str) -> list[Event]:
    return [e for e in events if e.input_id == input_id]


def answered(client: Client, worker_id: str) -> str:
    """The Worker's last answer as its transcript keeps it."""
    entries = client.transcript("fleet", worker_id).entries
    assert entries[-1].role.value == "assistant", entries
    assert TEXT in entries[-1].text  # the echo provider's answer contains the text verbatim
    return entries[-1].text


def test_a_stream_cut_mid_answer_resumes_with_every_event_once(
    slow_gateway: Gateway, proxy: CuttingProxy
) -> None:
    with Client(f"http://127.0.0.1:{proxy.port}", TOKEN) as client:
        worker = client.create_worker("fleet", "hank")
        answer_stream = client.send_and_stream("fleet", worker.worker_id, TEXT)
        events = list(answer_stream)
    assert proxy.cuts == 1  # really cut mid-answer...
    assert len(proxy.stream_requests) == 2
    assert b"last-event-id: " in proxy.stream_requests[1].lower()  # ...and resumed from a cursor

    with Client(slow_gateway.url, TOKEN) as direct:  # what the gateway kept, not through the cut
        kept = direct.events("fleet", worker.worker_id, limit=1000).events
        answer = answered(direct, worker.worker_id)
    input_id = answer_stream.accepted.input_id
    assert [e.cursor for e in events] == [e.cursor for e in of_input(kept, input_id)]
    assert len({e.cursor for e in events}) == len(events)  # no repeat
    assert answer_stream.answer.text == answer
    assert "".join(e.text for e in events if e.type == "text_delta") == answer


async def test_the_async_stream_resumes_too(slow_gateway: Gateway, proxy: CuttingProxy) -> None:
    async with AsyncClient(f"http://127.0.0.1:{proxy.port}", TOKEN) as client:
        worker = await client.create_worker("fleet", "iris")
        answer_stream = await client.send_and_stream("fleet", worker.worker_id, TEXT)
        events = [event async for event in answer_stream]
    assert proxy.cuts == 1 and len(proxy.stream_requests) == 2
    async with AsyncClient(slow_gateway.url, TOKEN) as direct:
        kept = (await direct.events("fleet", worker.worker_id, limit=1000)).events
    input_id = answer_stream.accepted.input_id
    assert [e.cursor for e in events] == [e.cursor for e in of_input(kept, input_id)]
    with Client(slow_gateway.url, TOKEN) as direct_sync:
        assert answer_stream.answer.text == answered(direct_sync, worker.worker_id)


def test_a_runtime_process_killed_mid_answer_is_attempt_2(killable_gateway: Gateway) -> None:
    with Client(killable_gateway.url, TOKEN) as client:
        worker = client.create_worker("fleet", "jack")
        first = killable_gateway.members[0]
        second = killable_gateway.add_member()  # takes the Worker over once the first is gone
        answer_stream = client.send_and_stream("fleet", worker.worker_id, TEXT)
        events: list[Event] = []
        for event in answer_stream:
            events.append(event)
            if sum(e.type == "text_delta" for e in events) == 2 and first.poll() is None:
                os.kill(first.pid, signal.SIGKILL)  # the only member hosting it so far
        finish(first)
        answer = answer_stream.answer
        final = answered(client, worker.worker_id)
    starts = [e for e in events if e.type == "run_started"]
    assert [e.attempt for e in starts] == [1, 2]
    assert answer.attempt == 2
    assert answer.text == final  # attempt 1's partial text was dropped, not prepended
    assert "".join(e.text for e in events if e.type == "text_delta") != final  # it was there
    finished = [e for e in events if e.type == "run_finished"]
    assert len(finished) == 1 and finished[0].result.value == "finished"
    wait_until_sync(lambda: second.poll() is None, what="the second member alive")
