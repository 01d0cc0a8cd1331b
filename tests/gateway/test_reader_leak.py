"""Every Redis reader ends with its last subscriber.

The fleet gateway used to leave blocked Redis readers behind: a client that posted an input,
followed `…/events/stream?after=<cursor>` and left after `run_finished` could leave its Worker's
hub reading on, because redis-py (under a socket timeout, on Python 3.11) dropped the hub's
cancellation when it arrived just as a command's write completed. The gateway's reader gauge read
0 while Redis counted a blocked client per such reader.

Shown with real parts: a private redis-server (so no other test's blocked clients count), the
gateway as `python -m gateway` on uvicorn, one `python -m runtime_worker` member, and real HTTP
streams; and, below that, the store's blocking read cancelled at every step of a command.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from gateway.mux import MUX_STREAMS
from runtime_worker.store.redis import RedisStore
from shared.ids import new_id
from shared.settings import Settings
from tests.fleet.support import FAST_ENV, Fleet
from tests.helpers import free_port, wait_until
from tests.redis_server import private_redis

pytestmark = [pytest.mark.slow, pytest.mark.redis]

WORKERS = 20
STREAMS = 1000
KEPT_OPEN = 5  # Workers that still have a live subscriber while the others' streams end
# The gateway follows Workers on one server with one blocking read per `MUX_STREAMS` of them
# (gateway/mux.py); at most WORKERS + KEPT_OPEN (< MUX_STREAMS) are followed at once here.
LIVE_READS = -(-KEPT_OPEN // MUX_STREAMS)
STREAM_TIMEOUT_S = 30.0


@pytest.fixture
def own_redis_url() -> Iterator[str]:
    """A redis-server of this test alone: only its own clients count."""
    with private_redis() as url:
        yield url


@pytest.fixture
def gateway_url(own_redis_url: str, namespace: str, tmp_path: Path) -> Iterator[tuple[str, Fleet]]:
    """A member process and a gateway process on the private Redis."""
    fleet = Fleet(own_redis_url, namespace, tmp_path)
    fleet.start("m1")
    port = free_port()
    env = {
        **os.environ,
        **FAST_ENV,
        "YOI_NAMESPACE": namespace,
        "YOI_API_TOKEN": "",
        "YOI_LOG_LEVEL": "WARNING",
    }
    argv = [sys.executable, "-m", "gateway", "--port", str(port)]
    argv += ["--redis-url", own_redis_url, "--fleet", "fleet"]
    with (tmp_path / "gateway.log").open("wb") as log:
        gateway = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}", fleet
    finally:
        gateway.terminate()
        gateway.wait(timeout=15)
        fleet.stop_all()


async def blocked_clients(client: aioredis.Redis) -> int:
    """The gateway's connections Redis holds blocked (the member's own doorbell reads come and
    go between their slices and are not counted)."""
    listed = await client.client_list()
    return sum(1 for c in listed if c["name"] == "yoi-gateway" and "b" in c["flags"])


async def gauge(http: httpx.AsyncClient, name: str) -> float:
    for line in (await http.get("/metrics")).text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


async def follow_one_run(http: httpx.AsyncClient, worker_id: str, n: int) -> None:
    """POST an input, stream from its cursor, leave as soon as its `run_finished` is read."""
    worker = f"/api/runtimes/fleet/workers/{worker_id}"
    sent = await http.post(f"{worker}/inputs", json={"text": f"hello {n}", "strategy": "enqueue"})
    assert sent.status_code == 202, sent.text
    accepted = sent.json()
    params = {"after": accepted["cursor"]}
    async with http.stream("GET", f"{worker}/events/stream", params=params) as stream:
        assert stream.status_code == 200
        event = ""
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif event == "run_finished" and accepted["input_id"] in line:
                return
    raise AssertionError(f"stream of {worker_id} ended before run_finished")


async def hold_open(http: httpx.AsyncClient, worker_id: str, opened: asyncio.Event) -> None:
    """A subscriber that stays until cancelled."""
    path = f"/api/runtimes/fleet/workers/{worker_id}/events/stream"
    async with http.stream("GET", path, params={"after": "now"}) as stream:
        assert stream.status_code == 200
        opened.set()
        async for _ in stream.aiter_lines():
            pass


async def test_streams_closed_after_run_finished_leave_no_blocked_reader(
    own_redis_url: str, gateway_url: tuple[str, Fleet]
) -> None:
    base, fleet = gateway_url
    redis_client = aioredis.Redis.from_url(own_redis_url)
    limits = httpx.Limits(max_connections=WORKERS + KEPT_OPEN + 10)
    http = httpx.AsyncClient(base_url=base, timeout=STREAM_TIMEOUT_S, limits=limits)
    holders: list[asyncio.Task[None]] = []
    try:

        async def ready() -> bool:
            try:
                return (await http.get("/readyz")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(ready, timeout_s=60, what=f"a ready gateway\n{fleet.logs()}")
        worker_ids = []
        for n in range(WORKERS + KEPT_OPEN):
            created = await http.post("/api/runtimes/fleet/workers", json={"display_name": f"w{n}"})
            assert created.status_code == 201, created.text
            worker_ids.append(created.json()["worker_id"])
        assert await blocked_clients(redis_client) == 0  # no stream open yet

        for worker_id in worker_ids[WORKERS:]:
            opened = asyncio.Event()
            holders.append(asyncio.create_task(hold_open(http, worker_id, opened)))
            await asyncio.wait_for(opened.wait(), STREAM_TIMEOUT_S)

        async def worker_loop(index: int) -> None:  # one run at a time per Worker
            for n in range(index, STREAMS, WORKERS):
                await follow_one_run(http, worker_ids[index], n)

        await asyncio.gather(*(worker_loop(i) for i in range(WORKERS)))

        async def only_live_readers_block() -> bool:
            return await blocked_clients(redis_client) == LIVE_READS

        await wait_until(only_live_readers_block, timeout_s=10, what="the readers of left streams")
        assert await gauge(http, "yoi_sse_readers") == KEPT_OPEN
        assert await gauge(http, "yoi_sse_clients") == KEPT_OPEN

        for holder in holders:
            holder.cancel()
        await asyncio.gather(*holders, return_exceptions=True)

        async def no_reader_blocks() -> bool:
            return await blocked_clients(redis_client) == 0

        await wait_until(no_reader_blocks, timeout_s=10, what="the last readers")

        async def no_reader_left() -> bool:
            return await gauge(http, "yoi_sse_readers") == 0

        await wait_until(no_reader_left, timeout_s=10, what="a readers gauge of 0")
        assert await gauge(http, "yoi_sse_clients") == 0
    finally:
        for holder in holders:
            holder.cancel()
        await asyncio.gather(*holders, return_exceptions=True)
        await http.aclose()
        await redis_client.aclose()


@pytest.mark.parametrize("steps", range(16))
async def test_a_cancelled_blocking_read_ends_at_once(
    redis_url: str, namespace: str, steps: int
) -> None:
    """Cancelled after `steps` passes of the event loop: while connecting, sending the command or
    blocked on the answer, the read ends within the deadline, never a 5 s block slice later."""
    store = RedisStore.from_url(
        redis_url, namespace=namespace, runtime_id="fleet", settings=Settings(namespace=namespace)
    )
    try:
        for _ in range(3):  # each cancel drops the connection: the next read connects anew
            read = asyncio.create_task(store.tail_events(new_id(), "0-0", 10, 30_000))
            for _ in range(steps):
                await asyncio.sleep(0)  # settle-ok: the number of loop passes is the parameter
            read.cancel()
            done, _ = await asyncio.wait({read}, timeout=2.0)
            assert done, f"a read cancelled after {steps} loop passes went on blocking"
            assert read.cancelled()
    finally:
        await store.aclose()
