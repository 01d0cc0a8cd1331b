"""Redis blackholed (a TCP proxy that stops moving bytes without refusing anything) under a
gateway process and two runtime processes: every request answers within its deadline, SSE
streams keep beating and go on when Redis returns, and no accepted input is lost or run twice."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from runtime_worker.runtime import Runtime
from tests.browser.gateway_process import Gateway, running_gateway
from tests.fleet.support import (
    LEASE_TTL_MS,
    Fleet,
    all_events,
    finished_counts,
    fleet_client,
    wait_finished,
    wait_hosted,
    wait_members,
)
from tests.gateway.sse_parser import Message, SseParser
from tests.helpers import wait_until
from tests.redis_cluster import TcpProxy
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.redis]

FLEET = "/api/runtimes/fleet"
OUTAGE_S = 15.0
ANSWER_WITHIN_S = 3.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    made = RedisServer(tmp_path / "redis")
    made.start()
    yield made
    made.stop()


@pytest.fixture
def proxy(server: RedisServer) -> Iterator[TcpProxy]:
    made = TcpProxy(server.port).start()
    yield made
    made.stop()


@pytest.fixture
def gateway(proxy: TcpProxy, namespace: str, tmp_path: Path) -> Iterator[Gateway]:
    """Two members and a gateway, all reaching Redis through the proxy."""
    fleet = Fleet(proxy.url, namespace, tmp_path)
    fleet.start("m1", echo_delay_ms="20")
    fleet.start("m2", echo_delay_ms="20")
    env = {
        "YOI_REDIS_URL": proxy.url,
        "YOI_FLEETS": "fleet",
        "YOI_NAMESPACE": namespace,
        "YOI_LEASE_TTL_MS": str(LEASE_TTL_MS),
        "YOI_HEARTBEAT_MS": "200",
        "YOI_SSE_HEARTBEAT_S": "1",
    }
    try:
        with running_gateway(tmp_path, echo_delay_ms=20, env=env) as made:
            yield made
        assert all(m.alive for m in fleet.members.values()), fleet.logs()
    finally:
        fleet.stop_all()


@pytest.fixture
async def observer(server: RedisServer, namespace: str) -> AsyncIterator[Runtime]:
    """The test's own view of the fleet, straight to Redis (never through the proxy)."""
    rt = fleet_client(server.url, namespace)
    yield rt
    await rt.aclose()


@dataclass
class StreamLog:
    """What one SSE client saw, and when."""

    messages: list[Message] = field(default_factory=list)
    beats: list[float] = field(default_factory=list)


async def follow(http: httpx.AsyncClient, url: str, seen: StreamLog) -> None:
    parser = SseParser()
    async with http.stream("GET", url, timeout=httpx.Timeout(10.0, read=None)) as answer:
        assert answer.status_code == 200
        async for chunk in answer.aiter_bytes():
            comments = len(parser.comments)
            seen.messages += parser.feed(chunk)
            seen.beats += [time.monotonic()] * (len(parser.comments) - comments)


async def timed(http: httpx.AsyncClient, method: str, url: str, **kw: object) -> httpx.Response:
    started = time.monotonic()
    answer = await http.request(method, url, **kw)  # type: ignore[arg-type]
    took = time.monotonic() - started
    assert took < ANSWER_WITHIN_S, f"{method} {url} took {took:.2f}s"
    if answer.status_code >= 400:
        error = answer.json()["error"]
        assert (answer.status_code, error["code"]) == (503, "runtime_unavailable"), answer.text
        assert error["retryable"] is True
    return answer


async def test_blackholed_redis_answers_every_request_in_time_and_loses_nothing(
    gateway: Gateway, proxy: TcpProxy, observer: Runtime
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10.0) as http:
        await wait_members(observer, ["m1", "m2"])
        made = [
            await http.post(f"{FLEET}/workers", json={"display_name": f"w{i}"}) for i in range(6)
        ]
        worker_ids = [str(m.json()["worker_id"]) for m in made]
        await wait_hosted(observer, worker_ids)
        expected: dict[str, set[str]] = {w: set() for w in worker_ids}
        words = " ".join(f"word{n}" for n in range(30))
        for worker_id in worker_ids:
            for n in range(2):
                body = {"text": f"{n} {words}", "strategy": "enqueue"}
                sent = await http.post(f"{FLEET}/workers/{worker_id}/inputs", json=body)
                assert sent.status_code == 202, sent.text
                expected[worker_id].add(sent.json()["input_id"])
        seen = StreamLog()
        stream_url = f"{FLEET}/workers/{worker_ids[0]}/events/stream?after=now"
        reader = asyncio.create_task(follow(http, stream_url, seen))
        try:

            async def showing() -> bool:
                return any(m.event == "text_delta" for m in seen.messages)

            await wait_until(showing, timeout_s=10, what="the stream showing an answer")
            proxy.blackhole()
            down_at = time.monotonic()
            retries: dict[str, tuple[str, str]] = {}  # input id → worker, text: sent in the outage
            answered = Counter[int]()
            while time.monotonic() - down_at < OUTAGE_S:
                k = len(retries)
                worker_id = worker_ids[k % len(worker_ids)]
                retries[f"outage-{k}"] = (worker_id, f"outage {k}")
                body = {"text": f"outage {k}", "input_id": f"outage-{k}", "strategy": "enqueue"}
                answers = await asyncio.gather(
                    timed(http, "POST", f"{FLEET}/workers/{worker_id}/inputs", json=body),
                    timed(http, "GET", f"{FLEET}/workers/{worker_id}"),
                    timed(http, "GET", f"{FLEET}/workers"),
                    timed(http, "GET", f"{FLEET}/workers/{worker_id}/events?limit=5"),
                    timed(http, "POST", f"{FLEET}/workers", json={"display_name": "down"}),
                )
                answered.update(a.status_code for a in answers)
            beats_in_outage = [t for t in seen.beats if down_at + 1 < t < time.monotonic()]
            proxy.forward()
            print(f"answers during the outage: {dict(answered)}")
            assert answered[503] > 0
            assert len(beats_in_outage) >= OUTAGE_S / 2, "the SSE stream stopped beating"
            assert not reader.done()

            # A 503 is "outcome unknown": the client retries with the same input id, and each
            # input runs once whichever try got through.
            async def resent() -> bool:
                for input_id, (worker_id, text) in list(retries.items()):  # the same request
                    body = {"text": text, "input_id": input_id, "strategy": "enqueue"}
                    sent = await http.post(f"{FLEET}/workers/{worker_id}/inputs", json=body)
                    if sent.status_code != 202:
                        return False
                    expected[worker_id].add(input_id)
                    del retries[input_id]
                return True

            await wait_until(resent, timeout_s=20, what="every outage input accepted on retry")
            finished = await wait_finished(observer, expected, timeout_s=60)
            for worker_id, events in finished.items():
                assert finished_counts(events) == Counter(expected[worker_id]), worker_id
            after = await http.post(
                f"{FLEET}/workers/{worker_ids[0]}/inputs", json={"text": "after the heal"}
            )
            assert after.status_code == 202, after.text
            last = after.json()["input_id"]

            async def streamed_on() -> bool:
                return any(
                    m.event == "run_finished" and m.json().get("input_id") == last
                    for m in seen.messages
                )

            await wait_until(streamed_on, timeout_s=20, what="the stream going on after the heal")
            streamed = [m.last_event_id for m in seen.messages]
            assert len(streamed) == len(set(streamed)), "the stream repeated an event"
            stored = [e.cursor for e in await all_events(observer, worker_ids[0])]
            start = stored.index(streamed[0])
            assert streamed == stored[start : start + len(streamed)], "the stream skipped events"
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
