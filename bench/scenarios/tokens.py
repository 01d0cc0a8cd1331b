"""`tokens`: a Worker streaming at 500 tokens/s (echo, 2 ms a word): how many event writes that
costs per second, and the gap a client sees between deltas. The ceiling is arithmetic: one
write per token is 500 writes/s with 2 ms gaps; coalescing should trade that for <= 50 writes/s
while the p99 gap stays under 60 ms so text still looks smooth."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from typing import Any

from bench.harness import Context, recorded
from bench.rawhttp import Connection, Pool, SseStream
from bench.redis_server import PrivateRedis, private_redis
from bench.results import ScenarioResult
from bench.stats import percentile, ratio
from bench.yoi_api import create_workers, inputs_path, stream_path, wait_hosted, worker_detail
from bench.yoi_stack import YoiStack, yoi_stack

ECHO_DELAY_MS = 2
TOKENS_PER_S = 1000 / ECHO_DELAY_MS
RUN_TIMEOUT_S = 60.0


def _command_calls(redis: PrivateRedis) -> Counter[str]:
    """Calls per command so far, from Redis' own counters (INFO commandstats)."""
    with redis.client() as conn:
        stats: dict[str, Any] = conn.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()})


async def _one_run(
    stack: YoiStack, conn: Connection, worker_id: str, words: int, tag: str
) -> tuple[list[dict[str, Any]], list[float]]:
    """Stream one long answer; the events seen and each text_delta's arrival time."""
    detail = await worker_detail(conn, worker_id)
    stream = SseStream("127.0.0.1", stack.port, stream_path(worker_id, str(detail["cursor"])))
    events: list[dict[str, Any]] = []
    arrivals: list[float] = []
    await stream.open()
    try:
        text = " ".join(f"{tag}w{i}" for i in range(words))
        await conn.json("POST", inputs_path(worker_id), {"text": text})
        async with asyncio.timeout(RUN_TIMEOUT_S):
            async for message in stream.events():
                if message.event == "text_delta":
                    arrivals.append(time.perf_counter())
                events.append(message.json())
                if message.event == "run_finished":
                    break
    finally:
        await stream.close()
    return events, arrivals


async def _measure(stack: YoiStack, redis: PrivateRedis, runs: int, words: int) -> dict[str, Any]:
    pool = Pool("127.0.0.1", stack.port, 1)
    conn = Connection("127.0.0.1", stack.port)
    gaps: list[float] = []
    deltas = 0
    streaming_s = 0.0
    calls: Counter[str] = Counter()
    try:
        (worker_id,) = await create_workers(pool, 1, prefix="tokens")
        await wait_hosted(conn, [worker_id], timeout_s=30)
        for index in range(runs):
            before = _command_calls(redis)
            events, arrivals = await _one_run(stack, conn, worker_id, words, f"r{index}")
            calls += _command_calls(redis) - before
            stamps = {e["type"]: float(e["ts"]) for e in events}
            streaming_s += stamps["text_done"] - stamps["run_started"]
            deltas += len(arrivals)
            gaps.extend(b - a for a, b in itertools.pairwise(arrivals))
    finally:
        await conn.close()
        await pool.close()
    return {
        "runs": float(runs),
        "tokens_per_run": float(words),
        "streaming_s": round(streaming_s, 2),
        "text_deltas": float(deltas),
        "delta_writes_per_s": round(deltas / streaming_s, 1),
        "ms_per_delta_write": round(streaming_s * 1000 / deltas, 1),
        "redis_calls_per_s_top": {
            name: round(n / streaming_s, 1) for name, n in calls.most_common(6)
        },
        "gap_p50_ms": round(percentile(gaps, 50) * 1000, 2),
        "gap_p99_ms": round(percentile(gaps, 99) * 1000, 2),
        "gap_max_ms": round(max(gaps) * 1000, 2) if gaps else float("nan"),
    }


def run(ctx: Context, result: ScenarioResult) -> None:
    runs, words = ctx.pick(3, 1), ctx.pick(2000, 1000)
    result.ceiling["one_write_per_token_per_s"] = TOKENS_PER_S
    result.ceiling["one_write_per_token_gap_ms"] = float(ECHO_DELAY_MS)
    env = {"YOI_ECHO_DELAY_MS": str(ECHO_DELAY_MS)}
    with (
        private_redis(ctx.log_dir) as redis,
        recorded(result, "yoi"),
        yoi_stack(redis, ctx.log_dir, runtimes=2, env=env) as stack,
    ):
        result.metrics.update(asyncio.run(_measure(stack, redis, runs, words)))
    writes = result.metrics.get("delta_writes_per_s")
    result.ratio["delta_writes_x_per_token"] = ratio(writes, TOKENS_PER_S)
    result.check("delta_writes_per_s", writes, "<=", 50)
    result.check("gap_p99_ms", result.metrics.get("gap_p99_ms"), "<=", 60)
    result.notes.append(
        f"{runs} run(s) of {words} words at {ECHO_DELAY_MS} ms a word; writes = text_delta "
        "events ÷ (text_done - run_started); redis_calls_per_s_top: the busiest Redis "
        "commands over the runs from every process, heartbeats included (context only)"
    )
