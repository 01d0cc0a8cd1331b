"""`throughput`: completed runs per second with 1,000 Workers under wrk load that saturates
the gateway, beside a bare FastAPI endpoint doing one XADD per request and the HTTP + arq path.

A run counts when it completes, not when its POST is accepted: after wrk stops, the backlog is
drained and the rate is completions ÷ (last completion - load start)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from bench import wrk
from bench.harness import Context, recorded
from bench.peers.arq_app import DONE_KEY
from bench.peers.launch import arq_peer, peer_app, static_http
from bench.rawhttp import Connection, Pool
from bench.redis_server import private_redis
from bench.results import ScenarioResult
from bench.stats import ratio
from bench.yoi_api import create_workers, inputs_path, wait_hosted
from bench.yoi_stack import RUNTIME_ID, yoi_stack

WORKERS = 1000
CONNECTIONS = 64
BODY = '{"text":"hello","strategy":"enqueue"}'
STALL_S = 5.0


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


def run(ctx: Context, result: ScenarioResult) -> None:
    duration_s = ctx.pick(15.0, 5.0)
    peer_paths = [inputs_path(f"w{i:04d}") for i in range(WORKERS)]
    with private_redis(ctx.log_dir) as redis:
        with recorded(result, "wrk ceiling"), static_http(ctx.log_dir) as port:
            ceiling = wrk.run_wrk(port, peer_paths, BODY, duration_s, connections=CONNECTIONS)
            result.loadgen["wrk_ceiling_rps"] = round(ceiling.ok_per_s, 1)
        with recorded(result, "bare"), peer_app("bare_xadd", redis, ctx.log_dir) as port:
            bare = wrk.run_wrk(port, peer_paths, BODY, duration_s, connections=CONNECTIONS)
            result.ceiling.update(bare.as_dict("bare"))
        redis.flush()
        with (
            recorded(result, "arq"),
            arq_peer(redis, ctx.log_dir, 0.01) as port,
            redis.client() as conn,
        ):

            def done() -> int:
                return int(conn.get(DONE_KEY) or 0)

            result.ceiling.update(_completed_rate(port, peer_paths, duration_s, done, "arq"))
        redis.flush()
        with recorded(result, "yoi"), yoi_stack(redis, ctx.log_dir, runtimes=2) as stack:
            worker_ids = asyncio.run(_setup_workers(stack.port))
            paths = [inputs_path(w) for w in worker_ids]
            counter = _yoi_runs(stack.base_url)
            result.metrics.update(_completed_rate(stack.port, paths, duration_s, counter, "yoi"))
    bare_rps = result.ceiling.get("bare_rps")
    arq_runs = result.ceiling.get("arq_runs_per_s")
    yoi_runs = result.metrics.get("yoi_runs_per_s")
    result.ratio["yoi_x_bare"] = ratio(yoi_runs, bare_rps)
    result.ratio["yoi_x_arq_fast"] = ratio(yoi_runs, arq_runs)
    result.check("yoi_x_bare", result.ratio["yoi_x_bare"], ">=", 0.5)
    result.check("yoi_x_arq_fast", result.ratio["yoi_x_arq_fast"], ">=", 1.5)
    result.loadgen["wrk"] = f"1 thread, {CONNECTIONS} connections, {duration_s:g} s per system"
    result.notes.append(
        f"{WORKERS} workers, POST inputs rotated over them (strategy enqueue); "
        "rate = completions ÷ (last completion - load start); arq: poll_delay 0.01, 2 workers"
    )
