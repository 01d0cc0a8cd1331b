"""`scale`: 100,000 Workers created over HTTP and hosted by 2 runtime processes.

Two phases in one run on one fleet: 1,000 Workers (created, hosted, one exchange each, then one
input at a time to a random idle one, timed to its first token), then the rest up to the full
count the same way. Reported: time until all are hosted, Redis memory per idle Worker after one
exchange, runtime RSS per 1,000 hosted, and the first-token p50 at the full count against the
one at 1,000 (what grows with the number of Workers shows there), beside the naive per-Worker
layout's memory on the same Redis build."""

from __future__ import annotations

import asyncio
import os
import random
import time

from bench.clients.latency_probe import longpoll_samples
from bench.harness import Context, recorded
from bench.peers.naive_layout import bytes_per_worker
from bench.procs import rss_bytes
from bench.rawhttp import Connection, Pool
from bench.redis_server import PrivateRedis, private_redis
from bench.results import ScenarioResult
from bench.stats import percentile, ratio
from bench.yoi_api import (
    create_workers,
    create_workers_batched,
    inputs_path,
    runs_completed,
    wait_all_hosted,
)
from bench.yoi_stack import DEFAULT_CAPACITY, YoiStack, yoi_stack

CONCURRENCY = 32
BATCH = 500  # Workers per batch create (`POST …/workers:batch`); 0: one request per Worker
BATCHES_IN_FLIGHT = 4
SETTLE_S = 1.0
MB = 1024 * 1024
SMALL = 1000  # the first phase's fleet: the latency to compare the full count against
PROBES = 40  # timed inputs per phase, each to a different random idle Worker
WARMUP = 5


async def _wait_runs(conn: Connection, target: int, timeout_s: float, every_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    done = 0
    while time.monotonic() < deadline:
        done = await runs_completed(conn)
        if done >= target:
            return
        await asyncio.sleep(every_s)
    raise TimeoutError(f"only {done} of {target} runs finished within {timeout_s:.0f} s")


class _Phases:
    """The fleet grown phase by phase; each phase's Workers get one exchange."""

    def __init__(self, stack: YoiStack, redis: PrivateRedis, ctx: Context) -> None:
        self.stack = stack
        self.redis = redis
        self.ctx = ctx
        self.pool = Pool("127.0.0.1", stack.port, CONCURRENCY)
        self.conn = Connection("127.0.0.1", stack.port)
        self.probe_conn = Connection("127.0.0.1", stack.port)
        self.worker_ids: list[str] = []
        # BENCH_SCALE_BATCH=0: the creates one by one (a build without the batch create)
        self.batch = int(os.environ.get("BENCH_SCALE_BATCH") or BATCH)
        self.hosting_s = 0.0
        self.create_s = 0.0
        self.after_create_s = 0.0  # from each phase's last create to all hosted
        self.exchange_s = 0.0

    async def grow(self, count: int) -> float:
        """Create `count` more Workers, wait until the fleet hosts all of them, give each new
        one an exchange; answers the runtimes' RSS once all were hosted."""
        total = len(self.worker_ids) + count
        poll_s = 0.25 if total <= 10_000 else 1.0
        runs_before = await runs_completed(self.conn)
        started = time.monotonic()
        prefix = f"scale{len(self.worker_ids)}"
        if self.batch:
            new = await create_workers_batched(
                self.pool, count, prefix, batch=self.batch, concurrency=BATCHES_IN_FLIGHT
            )
        else:
            new = await create_workers(self.pool, count, prefix=prefix)
        created_at = time.monotonic()
        self.create_s += created_at - started
        hosted_at = await wait_all_hosted(self.conn, total, self.ctx.pick(300, 90), poll_s)
        self.hosting_s += hosted_at - started
        self.after_create_s += max(0.0, hosted_at - created_at)
        rss = sum(rss_bytes(p.pid) for p in self.stack.runtimes)
        self.worker_ids.extend(new)
        body = {"text": "hello", "strategy": "enqueue"}
        exchange_started = time.monotonic()
        await asyncio.gather(*(self.pool.json("POST", inputs_path(w), body) for w in new))
        await _wait_runs(self.conn, runs_before + count, self.ctx.pick(600, 120), poll_s)
        self.exchange_s += time.monotonic() - exchange_started
        return float(rss)

    async def first_token_ms(self, tag: str) -> list[float]:
        """One input at a time, each to a random idle Worker, timed to its first token."""
        chosen = random.sample(self.worker_ids, WARMUP + PROBES)
        samples = await longpoll_samples(
            self.probe_conn, chosen, PROBES, warmup=WARMUP, finish="run_finished", tag=tag
        )
        if samples.errors:
            raise RuntimeError(f"{len(samples.errors)} probes failed: {samples.errors[0]}")
        return [s * 1000 for s in samples.seconds]

    async def close(self) -> None:
        await self.probe_conn.close()
        await self.conn.close()
        await self.pool.close()


async def _measure(
    stack: YoiStack, redis: PrivateRedis, count: int, ctx: Context
) -> dict[str, float]:
    metrics: dict[str, float] = {}
    phases = _Phases(stack, redis, ctx)
    try:
        await asyncio.sleep(SETTLE_S)
        memory_before = redis.used_memory()
        rss_before = sum(rss_bytes(p.pid) for p in stack.runtimes)
        await phases.grow(SMALL)
        small_ms = await phases.first_token_ms("small")
        rss_hosted = await phases.grow(count - SMALL)
        await asyncio.sleep(SETTLE_S)
        memory_after = redis.used_memory()
        rss_after = sum(rss_bytes(p.pid) for p in stack.runtimes)
        full_ms = await phases.first_token_ms("full")
    finally:
        await phases.close()
    thousands = count / 1000
    metrics["create_s"] = round(phases.create_s, 2)
    metrics["all_hosted_s"] = round(phases.hosting_s, 2)
    metrics["hosted_after_create_s"] = round(phases.after_create_s, 2)
    metrics["exchange_s"] = round(phases.exchange_s, 2)
    metrics["redis_bytes_per_worker"] = round((memory_after - memory_before) / count, 1)
    metrics["rss_mb_per_1000_hosted"] = round((rss_hosted - rss_before) / MB / thousands, 2)
    metrics["rss_mb_per_1000_after_exchange"] = round((rss_after - rss_before) / MB / thousands, 2)
    metrics["rss_mb_runtimes_idle"] = round(rss_before / MB, 1)
    metrics["rss_mb_runtimes_after"] = round(rss_after / MB, 1)
    metrics["rss_mb_gateway"] = round(rss_bytes(stack.gateway.pid) / MB, 1)
    metrics[f"first_token_p50_ms_{SMALL}"] = round(percentile(small_ms, 50), 2)
    metrics[f"first_token_p90_ms_{SMALL}"] = round(percentile(small_ms, 90), 2)
    metrics["first_token_p50_ms_full"] = round(percentile(full_ms, 50), 2)
    metrics["first_token_p90_ms_full"] = round(percentile(full_ms, 90), 2)
    metrics["probes_per_phase"] = float(PROBES)
    metrics["workers"] = float(count)
    metrics["create_batch"] = float(phases.batch)
    return metrics


def run(ctx: Context, result: ScenarioResult) -> None:
    # BENCH_SCALE_WORKERS: another size, e.g. to profile a mid-size fleet (at least 2,000)
    count = max(2 * SMALL, int(os.environ.get("BENCH_SCALE_WORKERS") or ctx.pick(100_000, 5_000)))
    capacity = max(DEFAULT_CAPACITY, count)  # either member may host them all
    with private_redis(ctx.log_dir) as redis:
        with recorded(result, "naive layout"), redis.client() as conn:
            naive = min(count, 10_000)  # bytes per Worker do not depend on how many
            result.ceiling["naive_bytes_per_worker"] = round(bytes_per_worker(conn, naive), 1)
        redis.flush()
        with (
            recorded(result, "yoi"),
            yoi_stack(redis, ctx.log_dir, runtimes=2, capacity=capacity) as stack,
        ):
            result.metrics.update(asyncio.run(_measure(stack, redis, count, ctx)))
    _checks(result)
    result.notes.append(
        f"{count} workers created over {CONCURRENCY} connections in two phases ({SMALL}, then "
        f"the rest; batch creates of {BATCH}, {BATCHES_IN_FLIGHT} in flight, unless "
        f"BENCH_SCALE_BATCH says otherwise: 0 is one create per Worker), "
        f"each Worker given one exchange; all_hosted_s sums both phases from their "
        f"first create to all hosted (the members' counts, polled every 0.1 s, confirmed by a "
        f"listing), hosted_after_create_s from each phase's last create; memory and RSS are "
        f"deltas from the idle fleet before any worker existed; first token: {PROBES} "
        f"long-polled inputs per phase, one at a time, each to a random idle Worker"
    )


def _checks(result: ScenarioResult) -> None:
    per_worker = result.metrics.get("redis_bytes_per_worker")
    result.ratio["redis_bytes_x_naive"] = ratio(
        per_worker, result.ceiling.get("naive_bytes_per_worker")
    )
    result.ratio["first_token_full_x_1000"] = ratio(
        result.metrics.get("first_token_p50_ms_full"),
        result.metrics.get(f"first_token_p50_ms_{SMALL}"),
    )
    result.check("all_hosted_s", result.metrics.get("all_hosted_s"), "<=", 30)
    result.check("redis_bytes_per_worker", per_worker, "<=", 4096)
    result.check(
        "rss_mb_per_1000_after_exchange",
        result.metrics.get("rss_mb_per_1000_after_exchange"),
        "<=",
        3,
    )
    result.check("first_token_full_x_1000", result.ratio["first_token_full_x_1000"], "<=", 1.2)
