"""`throughput`: completed runs per second with 1,000 Workers under wrk load that saturates
the gateway, beside a bare FastAPI endpoint doing one XADD per request and the HTTP + arq path.

A run counts when it completes, not when its POST is accepted: after wrk stops, the backlog is
drained and the rate is completions ÷ (last completion - load start).

Its cluster variant (`--cluster`) puts the same Yoi stack on one private Redis and on a private
3-primary Redis Cluster, in alternating rounds: the cluster's rate beside one server's."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable

import httpx

from bench import wrk
from bench.harness import Context, recorded
from bench.peers.arq_app import DONE_KEY
from bench.peers.launch import arq_peer, peer_app, static_http
from bench.rawhttp import Connection, Pool
from bench.redis_cluster import cluster_shape, flush_cluster, private_cluster
from bench.redis_server import PrivateRedis, private_redis
from bench.results import ScenarioResult
from bench.stats import best_round, percentile, ratio
from bench.yoi_api import create_workers, inputs_path, wait_hosted
from bench.yoi_stack import RUNTIME_ID, HasUrl, yoi_stack

WORKERS = 1000
CONNECTIONS = 64
BODY = '{"text":"hello","strategy":"enqueue"}'
STALL_S = 5.0
PEER_PATHS = [inputs_path(f"w{i:04d}") for i in range(WORKERS)]


def _drain(counter: Callable[[], int], target: int, timeout_s: float) -> tuple[int, float]:
    """Poll `counter` until it reaches `target`, stops moving for STALL_S, or the deadline;
    returns the last count and the monotonic time it was first seen."""
    deadline = time.monotonic() + timeout_s
    count = counter()
    changed_at = time.monotonic()
    while count < target and time.monotonic() < deadline:
        time.sleep(0.05)
        now_count = counter()
        if now_count != count:
            count, changed_at = now_count, time.monotonic()
        elif time.monotonic() - changed_at > STALL_S:
            break
    return count, changed_at


def _completed_rate(
    port: int, paths: list[str], duration_s: float, counter: Callable[[], int], prefix: str
) -> dict[str, float]:
    before = counter()
    started = time.monotonic()
    load = wrk.run_wrk(port, paths, BODY, duration_s, connections=CONNECTIONS)
    count, finished_at = _drain(counter, before + load.ok, timeout_s=max(60.0, duration_s * 4))
    completed = count - before
    metrics = load.as_dict(f"{prefix}_accept")
    metrics[f"{prefix}_completed"] = float(completed)
    metrics[f"{prefix}_runs_per_s"] = round(completed / (finished_at - started), 1)
    metrics[f"{prefix}_drain_s"] = round(finished_at - started - load.duration_s, 2)
    return metrics


def _yoi_runs(base_url: str) -> Callable[[], int]:
    client = httpx.Client(base_url=base_url, timeout=10.0)

    def runs() -> int:
        return int(client.get(f"/api/runtimes/{RUNTIME_ID}").json()["usage"]["runs"])

    return runs


async def _setup_workers(port: int) -> list[str]:
    pool = Pool("127.0.0.1", port, 16)
    conn = Connection("127.0.0.1", port)
    try:
        worker_ids = await create_workers(pool, WORKERS, prefix="tput")
        await wait_hosted(conn, worker_ids, timeout_s=60)
        return worker_ids
    finally:
        await conn.close()
        await pool.close()


def _bare_round(ctx: Context, redis: PrivateRedis, duration_s: float) -> dict[str, float]:
    with peer_app("bare_xadd", redis, ctx.log_dir) as port:
        return wrk.run_wrk(port, PEER_PATHS, BODY, duration_s, connections=CONNECTIONS).as_dict(
            "bare"
        )


def _arq_round(ctx: Context, redis: PrivateRedis, duration_s: float) -> dict[str, float]:
    with arq_peer(redis, ctx.log_dir, 0.01) as port, redis.client() as conn:

        def done() -> int:
            return int(conn.get(DONE_KEY) or 0)

        return _completed_rate(port, PEER_PATHS, duration_s, done, "arq")


def _yoi_round(
    ctx: Context, redis: HasUrl, duration_s: float, prefix: str = "yoi", round_: int = 1
) -> dict[str, float]:
    with yoi_stack(redis, ctx.log_dir / f"{prefix}-{round_}", runtimes=2) as stack:
        worker_ids = asyncio.run(_setup_workers(stack.port))
        paths = [inputs_path(w) for w in worker_ids]
        return _completed_rate(stack.port, paths, duration_s, _yoi_runs(stack.base_url), prefix)


def _wrk_ceiling(ctx: Context, result: ScenarioResult, duration_s: float) -> None:
    with recorded(result, "wrk ceiling"), static_http(ctx.log_dir) as port:
        ceiling = wrk.run_wrk(
            port, PEER_PATHS, BODY, ctx.pick(duration_s, 3.0), connections=CONNECTIONS
        )
        result.loadgen["wrk_ceiling_rps"] = round(ceiling.ok_per_s, 1)


def run(ctx: Context, result: ScenarioResult) -> None:
    if ctx.cluster:
        run_cluster(ctx, result)
        return
    duration_s = ctx.pick(15.0, 5.0)
    rounds = ctx.pick(2, 1)
    measured: dict[str, list[dict[str, float]]] = {"bare": [], "arq": [], "yoi": []}
    sides = {"bare": _bare_round, "arq": _arq_round, "yoi": _yoi_round}
    with private_redis(ctx.log_dir) as redis:
        _wrk_ceiling(ctx, result, duration_s)
        for index in range(rounds):  # alternate the sides so machine noise hits all alike
            for side, measure in sides.items():
                with recorded(result, f"{side} round {index + 1}"):
                    measured[side].append(measure(ctx, redis, duration_s))
                redis.flush()
    result.ceiling.update(best_round(measured["bare"], "bare_rps"))
    result.ceiling.update(best_round(measured["arq"], "arq_runs_per_s"))
    result.metrics.update(best_round(measured["yoi"], "yoi_runs_per_s"))
    bare_rps = result.ceiling.get("bare_rps")
    arq_runs = result.ceiling.get("arq_runs_per_s")
    yoi_runs = result.metrics.get("yoi_runs_per_s")
    result.ratio["yoi_x_bare"] = ratio(yoi_runs, bare_rps)
    result.ratio["yoi_x_arq_fast"] = ratio(yoi_runs, arq_runs)
    result.check("yoi_x_bare", result.ratio["yoi_x_bare"], ">=", 0.6)
    result.check("yoi_x_arq_fast", result.ratio["yoi_x_arq_fast"], ">=", 1.5)
    result.loadgen["wrk"] = f"1 thread, {CONNECTIONS} connections, {duration_s:g} s per round"
    result.notes.append(
        f"{WORKERS} workers, POST inputs rotated over them (strategy enqueue); best of {rounds} "
        "alternating round(s); rate = completions ÷ (last completion - load start); "
        "arq: poll_delay 0.01, 2 worker processes, arq defaults otherwise"
    )


def run_cluster(ctx: Context, result: ScenarioResult) -> None:
    """The same Yoi stack on one Redis and on a 3-primary cluster, in pairs of rounds (the
    order alternating between pairs). Rounds of one side moved by ±20 % on a quiet 2-core
    machine, so the check is on the median of the pairs' ratios: each pair shares the
    machine's state of the moment, which best-of-rounds (kept beside it) does not."""
    duration_s = ctx.pick(15.0, 5.0)
    rounds = ctx.pick(4, 1)
    measured: dict[str, list[dict[str, float]]] = {"yoi": [], "cluster": []}
    with private_redis(ctx.log_dir) as redis, private_cluster(ctx.log_dir) as cluster:
        _wrk_ceiling(ctx, result, duration_s)
        servers: dict[str, tuple[str, HasUrl, Callable[[], object]]] = {
            "yoi": ("one redis", redis, redis.flush),
            "cluster": ("cluster", cluster, functools.partial(flush_cluster, cluster)),
        }
        for index in range(rounds):
            for side in ("yoi", "cluster") if index % 2 == 0 else ("cluster", "yoi"):
                label, server, flush = servers[side]
                with recorded(result, f"{label} round {index + 1}"):
                    got = _yoi_round(ctx, server, duration_s, side, index + 1)
                flush()
                measured[side].append(got)
        shape = cluster_shape(cluster)
    result.ceiling.update(best_round(measured["yoi"], "yoi_runs_per_s"))
    result.metrics.update(best_round(measured["cluster"], "cluster_runs_per_s"))
    pairs = [
        ratio(c.get("cluster_runs_per_s"), o.get("yoi_runs_per_s"))
        for o, c in zip(measured["yoi"], measured["cluster"], strict=False)
    ]
    paired = [p for p in pairs if p is not None]
    result.metrics["cluster_x_one_redis_pairs"] = [round(p, 3) for p in paired]
    result.ratio["cluster_x_one_redis_best"] = ratio(
        result.metrics.get("cluster_runs_per_s"), result.ceiling.get("yoi_runs_per_s")
    )
    result.ratio["cluster_x_one_redis"] = round(percentile(paired, 50), 3) if paired else None
    result.check("cluster_x_one_redis", result.ratio["cluster_x_one_redis"], ">=", 0.9)
    result.loadgen["wrk"] = f"1 thread, {CONNECTIONS} connections, {duration_s:g} s per round"
    result.notes.append(
        f"Yoi (gateway + 2 runtime processes) on one Redis (ceiling side) and on a cluster of "
        f"{shape} (metrics side); {WORKERS} workers, POST inputs rotated over them (strategy "
        f"enqueue); {rounds} pair(s) of rounds, the order alternating; cluster_x_one_redis = "
        "median of the pairs' ratios (cluster_x_one_redis_best: best round over best round); "
        "rate = completions ÷ (last completion - load start)"
    )
