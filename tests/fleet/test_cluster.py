"""The fleet on a real 3-primary Redis Cluster: a gateway process and two runtime processes
given the same `redis://` URL they would get for one server; they find the cluster themselves."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from runtime_worker.runtime import Runtime
from tests.browser.gateway_process import Gateway, running_gateway
from tests.cli.support import clean_env, yoi
from tests.fleet.support import (
    LEASE_TTL_MS,
    Fleet,
    all_events,
    finished_counts,
    fleet_client,
    monotonic,
    records,
    store_of,
    wait_finished,
    wait_hosted,
    wait_members,
)
from tests.gateway.sse_parser import Message, SseParser
from tests.helpers import wait_until
from tests.redis_cluster import RedisCluster

pytestmark = [pytest.mark.slow, pytest.mark.redis]

FLEET = "/api/runtimes/fleet"


def delete_cluster_namespace(url: str, namespace: str) -> None:
    """Every key of the test's namespace, node by node (never a flush: the cluster is shared)."""
    client = redis.RedisCluster.from_url(url, socket_timeout=5, socket_connect_timeout=2)
    try:
        for node in client.get_primaries():
            found = list(client.scan_iter(match=f"{{{namespace}:*", count=1000, target_nodes=node))
            for key in found:
                client.delete(key)
    finally:
        client.close()


@pytest.fixture
def cluster_fleet(redis_cluster: RedisCluster, namespace: str, tmp_path: Path) -> Iterator[Fleet]:
    made = Fleet(redis_cluster.url, namespace, tmp_path)
    yield made
    made.stop_all()
    delete_cluster_namespace(redis_cluster.url, namespace)


@pytest.fixture
async def cluster_client(redis_cluster: RedisCluster, namespace: str) -> AsyncIterator[Runtime]:
    rt = fleet_client(redis_cluster.url, namespace)
    assert store_of(rt).cluster, "the client did not find the cluster from the server"
    yield rt
    await rt.aclose()


@pytest.fixture
def gateway(
    cluster_fleet: Fleet, redis_cluster: RedisCluster, namespace: str, tmp_path: Path
) -> Iterator[Gateway]:
    """Two members (so readiness holds), then the gateway process on the cluster."""
    cluster_fleet.start("m1", echo_delay_ms="20")
    cluster_fleet.start("m2", echo_delay_ms="20")
    env = {
        "YOI_REDIS_URL": redis_cluster.url,
        "YOI_FLEETS": "fleet",
        "YOI_NAMESPACE": namespace,
        "YOI_LEASE_TTL_MS": str(LEASE_TTL_MS),
        "YOI_HEARTBEAT_MS": "200",
    }
    with running_gateway(tmp_path, echo_delay_ms=20, env=env) as made:
        yield made


@pytest.fixture
async def http(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10.0) as client:
        yield client


async def create(http: httpx.AsyncClient, count: int) -> list[str]:
    async def one(i: int) -> str:
        answer = await http.post(f"{FLEET}/workers", json={"display_name": f"w{i}"})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["worker_id"])

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def send(http: httpx.AsyncClient, worker_id: str, text: str, **extra: Any) -> httpx.Response:
    return await http.post(f"{FLEET}/workers/{worker_id}/inputs", json={"text": text, **extra})


async def test_kill_9_of_a_member_answers_every_accepted_input_once(
    http: httpx.AsyncClient, cluster_fleet: Fleet, cluster_client: Runtime
) -> None:
    await wait_members(cluster_client, ["m1", "m2"])
    worker_ids = await create(http, 50)
    await wait_hosted(cluster_client, worker_ids)
    expected: dict[str, set[str]] = {w: set() for w in worker_ids}

    async def round_(text: str) -> None:
        answers = await asyncio.gather(
            *(send(http, w, text, strategy="enqueue") for w in worker_ids)
        )
        for worker_id, answer in zip(worker_ids, answers, strict=True):
            if answer.status_code == 202:  # only what was accepted must be answered
                expected[worker_id].add(answer.json()["input_id"])
            else:
                assert answer.json()["error"]["code"] == "runtime_unavailable", answer.text

    for n in range(2):
        await round_(f"round {n} of an answer with a few words to stream")
    victims = {w: r.epoch for w, r in (await records(cluster_client)).items() if r.host == "m1"}
    assert victims

    async def streaming() -> bool:
        events = await all_events(cluster_client, next(iter(victims)))
        return any(e.type == "text_delta" for e in events)

    await wait_until(streaming, timeout_s=10, what="answers streaming on the victim")
    cluster_fleet.members["m1"].signal(signal.SIGKILL)
    killed_at = monotonic()
    await round_("sent while the victim's workers move")

    async def rehosted() -> bool:
        now = await records(cluster_client)
        return all(now[w].host == "m2" and now[w].epoch > e for w, e in victims.items())

    await wait_until(rehosted, timeout_s=LEASE_TTL_MS / 1000 + 5, what="the victim's workers moved")
    print(f"cluster kill -9 takeover of {len(victims)} workers: {monotonic() - killed_at:.2f}s")
    assert sum(len(ids) for ids in expected.values()) >= 2 * len(worker_ids)
    seen = await wait_finished(cluster_client, expected, timeout_s=60)
    for worker_id, events in seen.items():
        assert finished_counts(events) == Counter(expected[worker_id]), worker_id
    assert cluster_fleet.members["m2"].alive


async def test_thirty_concurrent_rejects_give_one_202(
    http: httpx.AsyncClient, cluster_client: Runtime
) -> None:
    await wait_members(cluster_client, ["m1", "m2"])
    (worker_id,) = await create(http, 1)
    await wait_hosted(cluster_client, [worker_id])
    # Each answer streams for over half a second (30 words, 20 ms apart): the race is for an
    # idle Worker, not against the end of the winner's run.
    words = " ".join(f"word{n}" for n in range(30))
    answers = await asyncio.gather(
        *(send(http, worker_id, f"race {i} {words}", strategy="reject") for i in range(30))
    )
    codes = Counter(a.status_code for a in answers)
    assert codes == Counter({202: 1, 409: 29}), codes
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {"worker_busy"}
    (accepted,) = [a.json()["input_id"] for a in answers if a.status_code == 202]
    seen = await wait_finished(cluster_client, {worker_id: {accepted}})
    assert finished_counts(seen[worker_id]) == Counter([accepted])


async def read_sse(
    http: httpx.AsyncClient, url: str, headers: dict[str, str], until: int
) -> list[Message]:
    """Events of a stream until `until` of them came (or the run finished), then disconnect."""
    parser = SseParser()
    got: list[Message] = []
    async with asyncio.timeout(20), http.stream("GET", url, headers=headers) as answer:
        assert answer.status_code == 200
        async for chunk in answer.aiter_bytes():
            got += parser.feed(chunk)
            if len(got) >= until or any(m.event == "run_finished" for m in got):
                return got
    return got


async def test_sse_resumes_from_last_event_id(
    http: httpx.AsyncClient, cluster_client: Runtime
) -> None:
    await wait_members(cluster_client, ["m1", "m2"])
    (worker_id,) = await create(http, 1)
    await wait_hosted(cluster_client, [worker_id])
    words = " ".join(f"word{i}" for i in range(40))
    answer = await send(http, worker_id, words)
    assert answer.status_code == 202
    body = answer.json()
    url = f"{FLEET}/workers/{worker_id}/events/stream?after={body['cursor']}"
    first = await read_sse(http, url, {}, until=5)
    assert first and not any(m.event == "run_finished" for m in first)
    resumed = await read_sse(http, url, {"Last-Event-ID": first[-1].last_event_id}, until=10_000)
    assert any(m.event == "run_finished" for m in resumed)
    streamed = [m.last_event_id for m in first + resumed]
    stored = [e.cursor for e in await all_events(cluster_client, worker_id)]
    start = stored.index(streamed[0])
    assert streamed == stored[start : start + len(streamed)], "a gap or a repeat on resume"
    text = "".join(m.json()["text"] for m in first + resumed if m.event == "text_delta")
    assert words in text


async def test_tail_straight_from_the_cluster_with_yoi_and_redis_cli(
    http: httpx.AsyncClient, cluster_client: Runtime, redis_cluster: RedisCluster, namespace: str
) -> None:
    await wait_members(cluster_client, ["m1", "m2"])
    (worker_id,) = await create(http, 1)
    answer = await send(http, worker_id, "hello cluster")
    input_id = answer.json()["input_id"]
    await wait_finished(cluster_client, {worker_id: {input_id}})
    cursors = [e.cursor for e in await all_events(cluster_client, worker_id)]
    args = ["tail", worker_id, "--redis-url", redis_cluster.url, "--namespace", namespace]
    # Processes of their own, off the event loop (the gateway and members stay served).
    tailed = await asyncio.to_thread(yoi, *args, "--runtime-id", "fleet", env=clean_env())
    assert tailed.returncode == 0, tailed.stderr
    assert [line.split()[0] for line in tailed.stdout.splitlines()] == cursors
    # What the README tells an operator: `redis-cli -c` from any node follows the slot.
    key = store_of(cluster_client).keys.events(worker_id)
    for server in redis_cluster.servers:
        read = await asyncio.to_thread(
            subprocess.run,
            ["redis-cli", "-c", "-p", str(server.port), "XRANGE", key, "-", "+"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        assert all(cursor in read.stdout for cursor in cursors)
