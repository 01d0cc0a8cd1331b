"""`agent_server`: the closest agent-server peer, the LangGraph Agent Server in its in-memory
form, serving a graph that answers like the echo provider word by word, beside Yoi with the echo
provider at no delay. Both are driven by the same raw HTTP/SSE client.

Measured on each: first token (a stream opened before the input, and the one request that
starts the run and streams it: LangGraph's `…/runs/stream`, Yoi's `/v1/chat/completions`),
runs per second with 32 clients each running one answer after another, and server CPU per run.
Targets, as ratios: Yoi's first token >= 100x lower and its runs/s >= 10x.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.agent_server_env import agent_server_python
from bench.harness import Context, recorded
from bench.procs import ManagedProcess, cpu_seconds, free_port, http_ok, wait_until
from bench.rawhttp import Connection, Pool, SseEvent, SseStream
from bench.redis_server import private_redis
from bench.results import ScenarioResult
from bench.stats import ratio, summarize_ms
from bench.yoi_api import create_workers, inputs_path, stream_path, wait_hosted, worker_detail
from bench.yoi_stack import RUNTIME_ID, yoi_stack

CLIENTS = 32
TEXT = "hello there"
ANSWER_TIMEOUT_S = 30.0
PEER = Path(__file__).resolve().parent.parent / "peers" / "agent_server.py"
RunOnce = Callable[[], Awaitable[None]]


@contextmanager
def _langgraph(log_dir: Path) -> Iterator[tuple[int, ManagedProcess]]:
    port = free_port()
    argv = [str(agent_server_python()), str(PEER), str(port)]
    # N_JOBS_PER_WORKER: as many background runs at once as there are clients (default: 1)
    env = {"N_JOBS_PER_WORKER": str(CLIENTS)}
    with ManagedProcess("langgraph-agent-server", argv, log_dir, env=env, cwd=log_dir) as proc:
        wait_until(http_ok(f"http://127.0.0.1:{port}/ok"), 90, "agent server not ready", proc)
        yield port, proc


def _run_body(stream_mode: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"assistant_id": "echo", "input": {"text": TEXT}}
    if stream_mode:
        body["stream_mode"] = ["custom"]
    return body


async def _read_until(events: AsyncIterator[SseEvent], first: str, until: str) -> float:
    """Read events; the perf_counter time the first `first` event came. Stops at an event
    named `until`, right after that first event when `until` is "first", or when the server
    ends the stream when it is "end". A stream read over several answers must keep one
    `events()` iterator: its de-chunking state lives there."""
    seen = 0.0
    async with asyncio.timeout(ANSWER_TIMEOUT_S):
        async for message in events:
            if not seen and message.event.startswith(first):
                seen = time.perf_counter()
                if until == "first":
                    break
            if message.event == until:
                break
    if not seen:
        raise RuntimeError(f"no {first} event")
    return seen


async def _lg_first_joined(port: int, conn: Connection, thread_id: str) -> float:
    """Join the thread's stream, then start a background run: time to its first piece."""
    stream = SseStream("127.0.0.1", port, f"/threads/{thread_id}/stream?stream_modes=run_modes")
    await stream.open()
    try:
        started = time.perf_counter()
        run = await conn.json("POST", f"/threads/{thread_id}/runs", _run_body(True))
        first = await _read_until(stream.events(), "custom", "first")
        # the run must end before the next one starts (one answer at a time)
        await conn.json("GET", f"/threads/{thread_id}/runs/{run['run_id']}/join")
    finally:
        await stream.close()
    return first - started


async def _lg_one_request(port: int, thread_id: str) -> float:
    """One POST that starts the run and streams it: time to the first piece."""
    path = f"/threads/{thread_id}/runs/stream"
    stream = SseStream("127.0.0.1", port, path, post=_run_body(True))
    started = time.perf_counter()
    await stream.open()
    try:
        first = await _read_until(stream.events(), "custom", "end")
    finally:
        await stream.close()
    return first - started


async def _langgraph_measure(port: int, samples: int, duration_s: float) -> dict[str, Any]:
    conn = Connection("127.0.0.1", port)
    try:
        thread_id = str((await conn.json("POST", "/threads", {}))["thread_id"])
        await _lg_one_request(port, thread_id)  # warm up the graph and the server
        joined = [await _lg_first_joined(port, conn, thread_id) for _ in range(samples)]
        single = [await _lg_one_request(port, thread_id) for _ in range(samples)]
        threads = [
            str((await conn.json("POST", "/threads", {}))["thread_id"]) for _ in range(CLIENTS)
        ]
    finally:
        await conn.close()

    def client(thread_id: str) -> RunOnce:
        async def once() -> None:
            await _lg_one_request(port, thread_id)

        return once

    return {
        "joined": joined,
        "single": single,
        "runs": await _closed_loop([client(t) for t in threads], duration_s),
    }


async def _closed_loop(clients: list[RunOnce], duration_s: float) -> int:
    """Each client runs one answer after another until the deadline; answers completed."""
    deadline = time.monotonic() + duration_s
    done = 0

    async def loop(once: RunOnce) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await once()
            done += 1

    await asyncio.gather(*(loop(c) for c in clients))
    return done


class _YoiClient:
    """One Worker with its event stream open; `once()` sends an input and reads to its end."""

    def __init__(self, port: int, worker_id: str) -> None:
        self.port, self.worker_id = port, worker_id
        self.conn = Connection("127.0.0.1", port)
        self.stream: SseStream | None = None
        self.events: AsyncIterator[SseEvent] | None = None

    async def open(self) -> None:
        cursor = str((await worker_detail(self.conn, self.worker_id))["cursor"])
        self.stream = SseStream("127.0.0.1", self.port, stream_path(self.worker_id, cursor))
        await self.stream.open()
        self.events = self.stream.events()

    async def first_token_s(self) -> float:
        assert self.events is not None
        started = time.perf_counter()
        await self.conn.json("POST", inputs_path(self.worker_id), {"text": TEXT})
        first = await _read_until(self.events, "text_delta", "run_finished")
        return first - started

    async def one_request_s(self) -> float:
        """`POST /v1/chat/completions` streaming to this Worker: time to the first content."""
        body = {
            "model": f"{RUNTIME_ID}/{self.worker_id}",
            "messages": [{"role": "user", "content": TEXT}],
            "stream": True,
        }
        stream = SseStream("127.0.0.1", self.port, "/v1/chat/completions", post=body)
        started = time.perf_counter()
        first = 0.0
        await stream.open()
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT_S):
                async for message in stream.events():
                    if message.data == b"[DONE]":
                        break
                    choices = message.json().get("choices") or [{}]
                    if not first and choices[0].get("delta", {}).get("content"):
                        first = time.perf_counter()
        finally:
            await stream.close()
        if not first:
            raise RuntimeError("no content chunk from /v1/chat/completions")
        return first - started

    async def once(self) -> None:
        await self.first_token_s()

    async def close(self) -> None:
        if self.stream is not None:
            await self.stream.close()
        await self.conn.close()


async def _yoi_measure(port: int, samples: int, duration_s: float) -> dict[str, Any]:
    pool = Pool("127.0.0.1", port, 8)
    conn = Connection("127.0.0.1", port)
    clients: list[_YoiClient] = []
    try:
        worker_ids = await create_workers(pool, CLIENTS, prefix="peer")
        await wait_hosted(conn, worker_ids, timeout_s=30)
        clients = [_YoiClient(port, w) for w in worker_ids]
        await asyncio.gather(*(c.open() for c in clients))
        await clients[0].once()  # warm up
        first = [await clients[0].first_token_s() for _ in range(samples)]
        await clients[1].one_request_s()  # warm up
        single = [await clients[1].one_request_s() for _ in range(samples)]
        runs = await _closed_loop([c.once for c in clients], duration_s)
    finally:
        await asyncio.gather(*(c.close() for c in clients))
        await conn.close()
        await pool.close()
    return {"first": first, "single": single, "runs": runs}


def _cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def run(ctx: Context, result: ScenarioResult) -> None:
    samples, duration_s = ctx.pick(40, 10), ctx.pick(10.0, 4.0)
    with recorded(result, "langgraph"), _langgraph(ctx.log_dir) as (port, proc):
        before = _cpu([proc.pid])
        measured = asyncio.run(_langgraph_measure(port, samples, duration_s))
        cpu_s = _cpu([proc.pid]) - before
        result.ceiling.update(summarize_ms(measured["joined"], "langgraph_first_token_joined"))
        result.ceiling.update(summarize_ms(measured["single"], "langgraph_first_token_one_request"))
        result.ceiling["langgraph_runs_per_s"] = round(measured["runs"] / duration_s, 1)
        result.ceiling["langgraph_cpu_ms_per_run"] = _per_run_ms(cpu_s, measured)
    with (
        private_redis(ctx.log_dir) as redis,
        recorded(result, "yoi"),
        yoi_stack(redis, ctx.log_dir, runtimes=2, env={"YOI_ECHO_DELAY_MS": "0"}) as stack,
    ):
        pids = [stack.gateway.pid, *(p.pid for p in stack.runtimes), redis.proc.pid]
        before = _cpu(pids)
        yoi = asyncio.run(_yoi_measure(stack.port, samples, duration_s))
        cpu_s = _cpu(pids) - before
        result.metrics.update(summarize_ms(yoi["first"], "yoi_first_token"))
        result.metrics.update(summarize_ms(yoi["single"], "yoi_first_token_one_request"))
        result.metrics["yoi_runs_per_s"] = round(yoi["runs"] / duration_s, 1)
        result.metrics["yoi_cpu_ms_per_run"] = _per_run_ms(cpu_s, yoi)
    _checks(result)
    result.notes.append(
        f"first token: {samples} sequential inputs, one answer at a time; runs/s: {CLIENTS} "
        f"clients for {duration_s:g} s, each its own thread/Worker, one answer after another; "
        "CPU per run: server processes' CPU over the whole measurement (LangGraph: its one "
        "process; Yoi: gateway + 2 runtime processes + Redis) / every answer it made; LangGraph "
        f"in-memory, N_JOBS_PER_WORKER={CLIENTS}, no tracing; Yoi echo at YOI_ECHO_DELAY_MS=0"
    )


def _per_run_ms(cpu_s: float, measured: dict[str, Any]) -> float:
    """Every answer of the measurement counts: the first-token samples and the loop's runs."""
    answers = int(measured["runs"]) + sum(len(v) for v in measured.values() if isinstance(v, list))
    return round(cpu_s * 1000 / answers, 2) if answers else float("nan")


def _checks(result: ScenarioResult) -> None:
    yoi = {
        "joined": result.metrics.get("yoi_first_token_p50_ms"),
        "one_request": result.metrics.get("yoi_first_token_one_request_p50_ms"),
    }
    for mode, yoi_first in yoi.items():
        key = f"langgraph_first_token_{mode}_p50_x_yoi"
        result.ratio[key] = ratio(
            result.ceiling.get(f"langgraph_first_token_{mode}_p50_ms"), yoi_first
        )
        result.check(key, result.ratio[key], ">=", 100)
    result.ratio["yoi_runs_per_s_x_langgraph"] = ratio(
        result.metrics.get("yoi_runs_per_s"), result.ceiling.get("langgraph_runs_per_s")
    )
    result.ratio["langgraph_cpu_per_run_x_yoi"] = ratio(
        result.ceiling.get("langgraph_cpu_ms_per_run"), result.metrics.get("yoi_cpu_ms_per_run")
    )
    result.check("yoi_runs_per_s_x_langgraph", result.ratio["yoi_runs_per_s_x_langgraph"], ">=", 10)
