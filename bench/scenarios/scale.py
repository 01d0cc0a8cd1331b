"""`scale`: 10,000 Workers created over HTTP and hosted by 2 runtime processes: time until all
are hosted, Redis memory per idle Worker after one exchange, and runtime RSS per 1,000 hosted,
beside the naive per-Worker layout's memory on the same Redis build."""

from __future__ import annotations

import asyncio
import time

from bench.harness import Context, recorded
from bench.peers.naive_layout import bytes_per_worker
from bench.procs import rss_bytes
from bench.rawhttp import Connection, Pool
from bench.redis_server import PrivateRedis, private_redis
from bench.results import ScenarioResult
from bench.stats import ratio
from bench.yoi_api import create_workers, inputs_path, runs_completed, wait_hosted
from bench.yoi_stack import YoiStack, yoi_stack

CONCURRENCY = 32
SETTLE_S = 1.0
MB = 1024 * 1024


async def _wait_runs(conn: Connection, target: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    done = 0
    while time.monotonic() < deadline:
        done = await runs_completed(conn)
        if done >= target:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"only {done} of {target} runs finished within {timeout_s:.0f} s")


async def _measure(
    stack: YoiStack, redis: PrivateRedis, count: int, ctx: Context
) -> dict[str, float]:
    metrics: dict[str, float] = {}
    pool = Pool("127.0.0.1", stack.port, CONCURRENCY)
    conn = Connection("127.0.0.1", stack.port)
    try:
        await asyncio.sleep(SETTLE_S)
        memory_before = redis.used_memory()
        rss_before = sum(rss_bytes(p.pid) for p in stack.runtimes)
        runs_before = await runs_completed(conn)
        started = time.monotonic()
        worker_ids = await create_workers(pool, count, prefix="scale")
        metrics["create_s"] = round(time.monotonic() - started, 2)
        hosted_at = await wait_hosted(conn, worker_ids, timeout_s=ctx.pick(120, 60))
        metrics["all_hosted_s"] = round(hosted_at - started, 2)
        rss_hosted = sum(rss_bytes(p.pid) for p in stack.runtimes)

        body = {"text": "hello", "strategy": "enqueue"}
        await asyncio.gather(*(pool.json("POST", inputs_path(w), body) for w in worker_ids))
        await _wait_runs(conn, runs_before + count, timeout_s=ctx.pick(180, 90))
        metrics["exchange_s"] = round(time.monotonic() - hosted_at, 2)
        await asyncio.sleep(SETTLE_S)
        memory_after = redis.used_memory()
        rss_after = sum(rss_bytes(p.pid) for p in stack.runtimes)
    finally:
        await conn.close()
        await pool.close()
    thousands = count / 1000
    metrics["redis_bytes_per_worker"] = round((memory_after - memory_before) / count, 1)
    metrics["rss_mb_per_1000_hosted"] = round((rss_hosted - rss_before) / MB / thousands, 2)
    metrics["rss_mb_per_1000_after_exchange"] = round((rss_after - rss_before) / MB / thousands, 2)
    metrics["rss_mb_runtimes_idle"] = round(rss_before / MB, 1)
    metrics["rss_mb_runtimes_after"] = round(rss_after / MB, 1)
    metrics["rss_mb_gateway"] = round(rss_bytes(stack.gateway.pid) / MB, 1)
    metrics["workers"] = float(count)
    return metrics


def run(ctx: Context, result: ScenarioResult) -> None:
    count = ctx.pick(10_000, 2_000)
    with private_redis(ctx.log_dir) as redis:
        with recorded(result, "naive layout"), redis.client() as conn:
            result.ceiling["naive_bytes_per_worker"] = round(bytes_per_worker(conn, count), 1)
        redis.flush()
        with recorded(result, "yoi"), yoi_stack(redis, ctx.log_dir, runtimes=2) as stack:
            result.metrics.update(asyncio.run(_measure(stack, redis, count, ctx)))
    per_worker = result.metrics.get("redis_bytes_per_worker")
    result.ratio["redis_bytes_x_naive"] = ratio(
        per_worker, result.ceiling.get("naive_bytes_per_worker")
    )
    result.check("all_hosted_s", result.metrics.get("all_hosted_s"), "<=", 10)
    result.check("redis_bytes_per_worker", per_worker, "<=", 6144)
    result.check(
        "rss_mb_per_1000_after_exchange",
        result.metrics.get("rss_mb_per_1000_after_exchange"),
        "<=",
        10,
    )
    result.notes.append(
        f"{count} workers created over {CONCURRENCY} connections; all_hosted_s counts from the "
        "first create; memory and RSS are deltas from the idle fleet before any worker existed"
    )
