"""`latency`: POST …/inputs → first `text_delta` at an SSE client and at a long-poll client,
beside raw redis-py ping-pong (the floor) and the same HTTP path through an arq job."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

from bench.clients.latency_probe import SseHub, longpoll_samples, sse_samples
from bench.harness import Context, recorded
from bench.peers.launch import arq_peer
from bench.procs import ManagedProcess, python_module
from bench.rawhttp import Connection, Pool
from bench.redis_server import PrivateRedis, private_redis
from bench.results import ScenarioResult
from bench.stats import ratio, summarize_ms
from bench.yoi_api import create_workers, wait_hosted, worker_detail
from bench.yoi_stack import YoiStack, yoi_stack

WORKERS = 100
# Issue 16's raised targets: first token p50 within this many ping-pongs.
P50_X_PINGPONG = {"sse": 5.0, "longpoll": 6.0}


def _pingpong(redis: PrivateRedis, ctx: Context, count: int) -> list[float]:
    """Responder and requester as two processes, like a gateway and a runtime."""
    args = ["--port", str(redis.port), "--count", str(count)]
    responder = python_module("bench.peers.pingpong", "responder", *args)
    with ManagedProcess("pingpong-responder", responder, ctx.log_dir):
        done = subprocess.run(
            python_module("bench.peers.pingpong", "requester", *args),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    samples: list[float] = json.loads(done.stdout)["samples_s"]
    return samples


async def _arq_latency(port: int, count: int, poll_delay_s: float, tag: str) -> list[float]:
    conn = Connection("127.0.0.1", port)
    try:
        worker_ids = [f"w{i:03d}" for i in range(WORKERS)]
        samples = await longpoll_samples(
            conn, worker_ids, count, warmup=5, finish=None, tag=tag, max_pause_s=poll_delay_s
        )
    finally:
        await conn.close()
    if samples.errors:
        raise RuntimeError(f"{len(samples.errors)} inputs failed, first: {samples.errors[0]}")
    return samples.seconds


async def _yoi_latency(stack: YoiStack, count: int, result: ScenarioResult) -> None:
    pool = Pool("127.0.0.1", stack.port, 16)
    conn = Connection("127.0.0.1", stack.port)
    try:
        worker_ids = await create_workers(pool, WORKERS, prefix="lat")
        await wait_hosted(conn, worker_ids, timeout_s=30)
        details = await asyncio.gather(*(worker_detail(pool, w) for w in worker_ids))
        cursors = {d["worker_id"]: str(d.get("cursor") or "now") for d in details}
        hub = SseHub("127.0.0.1", stack.port, finish="run_finished")
        try:
            await hub.open(cursors)
            sse = await sse_samples(hub, conn, worker_ids, count, warmup=WORKERS, tag="sse")
        finally:
            await hub.close()
        polled = await longpoll_samples(
            conn, worker_ids, count, warmup=WORKERS // 4, finish="run_finished", tag="lp"
        )
    finally:
        await conn.close()
        await pool.close()
    result.metrics.update(summarize_ms(sse.seconds, "sse"))
    result.metrics.update(summarize_ms(polled.seconds, "longpoll"))
    result.metrics["sse_errors"] = len(sse.errors) + len(hub.reader_errors)
    result.metrics["longpoll_errors"] = len(polled.errors)
    for label, errors in (("sse", sse.errors + hub.reader_errors), ("longpoll", polled.errors)):
        if errors:
            result.errors.append(f"yoi {label}: {len(errors)} inputs failed, first: {errors[0]}")


def run(ctx: Context, result: ScenarioResult) -> None:
    count = ctx.pick(2000, 300)
    arq_counts = {"arq_default": ctx.pick(100, 20), "arq_fast": ctx.pick(1000, 200)}
    poll_delays = {"arq_default": 0.5, "arq_fast": 0.01}
    with private_redis(ctx.log_dir) as redis:
        with recorded(result, "pingpong"):
            result.ceiling.update(
                summarize_ms(_pingpong(redis, ctx, ctx.pick(5000, 2000)), "pingpong")
            )
        for label, n in arq_counts.items():
            redis.flush()
            with recorded(result, label), arq_peer(redis, ctx.log_dir, poll_delays[label]) as port:
                samples = asyncio.run(_arq_latency(port, n, poll_delays[label], label))
                result.ceiling.update(summarize_ms(samples, label))
        redis.flush()
        with recorded(result, "yoi"), yoi_stack(redis, ctx.log_dir, runtimes=2) as stack:
            started = time.monotonic()
            asyncio.run(_yoi_latency(stack, count, result))
            result.metrics["measure_s"] = round(time.monotonic() - started, 1)
    _checks(result)
    result.notes.append(
        f"{count} sequential inputs per client kind over {WORKERS} workers; echo provider; "
        "arq peer read back by long-poll with 2 arq worker processes, each input sent after an "
        "untimed random pause of up to poll_delay so it lands at a random phase of arq's poll"
    )


def _checks(result: ScenarioResult) -> None:
    pingpong = result.ceiling.get("pingpong_p50_ms")
    arq_fast = result.ceiling.get("arq_fast_p50_ms")
    arq_default = result.ceiling.get("arq_default_p50_ms")
    for kind in ("sse", "longpoll"):
        p50 = result.metrics.get(f"{kind}_p50_ms")
        p99 = result.metrics.get(f"{kind}_p99_ms")
        result.ratio[f"{kind}_p50_x_pingpong"] = ratio(p50, pingpong)
        result.ratio[f"arq_fast_p50_x_{kind}"] = ratio(arq_fast, p50)
        result.ratio[f"arq_default_p50_x_{kind}"] = ratio(arq_default, p50)
        result.check(
            f"{kind}_p50_x_pingpong",
            result.ratio[f"{kind}_p50_x_pingpong"],
            "<=",
            P50_X_PINGPONG[kind],
        )
        result.check(f"{kind}_p99_ms", p99, "<=", 10)
        result.check(f"arq_fast_p50_x_{kind}", result.ratio[f"arq_fast_p50_x_{kind}"], ">=", 5)
        result.check(
            f"arq_default_p50_x_{kind}", result.ratio[f"arq_default_p50_x_{kind}"], ">=", 100
        )
