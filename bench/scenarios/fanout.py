"""`fanout`: many SSE subscribers on one Worker streaming a 2,000-token answer: delivered
events/s and whether every subscriber saw every event in order, beside a bare Starlette relay
tailing a Redis stream that carries the same events.

The echo provider runs with no delay and no coalescing, so the answer is as many events as the
runtime makes of it; the relay replays exactly the events Yoi produced (or 2,000 one-token
deltas when Yoi did not run), so both sides deliver the same event list."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx

from bench.clients.fanout_fleet import FleetReport, subscriber_fleet
from bench.harness import Context, recorded
from bench.peers.launch import peer_app
from bench.rawhttp import Connection, Pool
from bench.redis_server import PrivateRedis, private_redis
from bench.results import ScenarioResult
from bench.stats import best_round, ratio
from bench.yoi_api import WORKERS, create_workers, read_events, wait_hosted, worker_detail
from bench.yoi_stack import YoiStack, yoi_stack

TOKENS = 2000
RELAY_KEY = "fanout:events"
YOI_ENV = {"YOI_ECHO_DELAY_MS": "0", "YOI_FLUSH_INTERVAL_MS": "0"}


@dataclass(frozen=True)
class Sizes:
    subscribers: int
    processes: int
    timeout_s: float


def _digest(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def _summarize(
    report: FleetReport, reference: list[str], started: float, prefix: str
) -> dict[str, float]:
    in_order = report.hashes.get(_digest(reference), 0)
    elapsed = report.last_t - started
    return {
        f"{prefix}_subscribers": float(report.subscribers),
        f"{prefix}_events_per_run": float(len(reference)),
        f"{prefix}_in_order": float(in_order),
        f"{prefix}_in_order_fraction": round(in_order / report.subscribers, 4),
        f"{prefix}_delivered": float(report.events),
        f"{prefix}_seconds": round(elapsed, 2),
        f"{prefix}_events_per_s": round(report.events / elapsed, 1) if elapsed > 0 else 0.0,
        f"{prefix}_resumes": float(report.resumes),
        f"{prefix}_client_errors": float(len(report.errors)),
        f"{prefix}_client_cpu_s": report.client_cpu_s,
    }


async def _prepare_worker(port: int) -> str:
    """One hosted Worker with one finished exchange behind it."""
    pool = Pool("127.0.0.1", port, 1)
    conn = Connection("127.0.0.1", port)
    try:
        (worker_id,) = await create_workers(pool, 1, prefix="fanout")
        await wait_hosted(conn, [worker_id], timeout_s=30)
        accepted = await conn.json("POST", f"{WORKERS}/{worker_id}/inputs", {"text": "warm up"})
        await read_events(conn, worker_id, accepted["cursor"], timeout_s=30, until="run_finished")
        return worker_id
    finally:
        await conn.close()
        await pool.close()


async def _run_events(port: int, worker_id: str, after: str) -> list[dict[str, Any]]:
    conn = Connection("127.0.0.1", port)
    try:
        events = await read_events(conn, worker_id, after, timeout_s=30, until="run_finished")
    finally:
        await conn.close()
    end = next(i for i, e in enumerate(events) if e["type"] == "run_finished")
    return events[: end + 1]


def _yoi_round(
    stack: YoiStack, worker_id: str, ctx: Context, sizes: Sizes, tag: str
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """One 2,000-token answer to every subscriber; the round's figures and its events."""
    cursor = asyncio.run(_latest_cursor(stack.port, worker_id))
    text = " ".join(f"{tag}t{i}" for i in range(TOKENS))
    path = f"{WORKERS}/{worker_id}/events/stream"
    with subscriber_fleet(
        stack.port, path, cursor, sizes.subscribers, sizes.processes, sizes.timeout_s,
        ctx.log_dir, tag,
    ) as fleet:  # fmt: skip
        fleet.wait_ready()
        started = time.monotonic()
        response = httpx.post(
            f"{stack.base_url}{WORKERS}/{worker_id}/inputs", json={"text": text}, timeout=10
        )
        response.raise_for_status()
        report = fleet.collect(sizes.timeout_s + 15)
    events = asyncio.run(_run_events(stack.port, worker_id, cursor))
    figures = _summarize(report, [e["cursor"] for e in events], started, "yoi")
    figures["yoi_text_deltas"] = float(sum(e["type"] == "text_delta" for e in events))
    return figures, events


async def _latest_cursor(port: int, worker_id: str) -> str:
    conn = Connection("127.0.0.1", port)
    try:
        return str((await worker_detail(conn, worker_id))["cursor"])
    finally:
        await conn.close()


def _synthetic_events() -> list[dict[str, Any]]:
    deltas = [{"type": "text_delta", "text": f"tok{i} "} for i in range(TOKENS)]
    return [{"type": "run_started"}, *deltas, {"type": "text_done"}, {"type": "run_finished"}]


def _relay_round(
    port: int,
    redis: PrivateRedis,
    ctx: Context,
    sizes: Sizes,
    events: list[dict[str, Any]],
    tag: str,
) -> dict[str, float]:
    """The same events XADDed one at a time to a fresh stream the relay's subscribers tail."""
    key = f"{RELAY_KEY}:{tag}"
    with subscriber_fleet(
        port, f"/streams/{key}", "0-0", sizes.subscribers, sizes.processes,
        sizes.timeout_s, ctx.log_dir, tag,
    ) as fleet, redis.client() as conn:  # fmt: skip
        fleet.wait_ready()
        started = time.monotonic()
        ids = [conn.xadd(key, {"type": e["type"], "data": json.dumps(e)}).decode() for e in events]
        report = fleet.collect(sizes.timeout_s + 15)
    return _summarize(report, ids, started, "relay")


def run(ctx: Context, result: ScenarioResult) -> None:
    sizes = Sizes(
        subscribers=ctx.pick(1000, 200), processes=ctx.pick(4, 2), timeout_s=ctx.pick(240.0, 60.0)
    )
    rounds = ctx.pick(2, 1)
    yoi_rounds: list[dict[str, float]] = []
    relay_rounds: list[dict[str, float]] = []
    replayed = "synthetic"
    with private_redis(ctx.log_dir) as redis, ExitStack() as running:
        stack: YoiStack | None = None
        worker_id = ""
        with recorded(result, "yoi"):
            stack = running.enter_context(yoi_stack(redis, ctx.log_dir, runtimes=2, env=YOI_ENV))
            worker_id = asyncio.run(_prepare_worker(stack.port))
        relay_port = running.enter_context(peer_app("sse_relay", redis, ctx.log_dir))
        events = _synthetic_events()
        for index in range(rounds):  # alternate the sides so machine noise hits both alike
            if stack is not None and worker_id:
                with recorded(result, f"yoi round {index + 1}"):
                    figures, run_events = _yoi_round(stack, worker_id, ctx, sizes, f"yoi{index}")
                    yoi_rounds.append(figures)
                    events, replayed = run_events, "Yoi's"
            with recorded(result, f"relay round {index + 1}"):
                relay_rounds.append(
                    _relay_round(relay_port, redis, ctx, sizes, events, f"relay{index}")
                )
    result.metrics.update(best_round(yoi_rounds, "yoi_events_per_s"))
    result.ceiling.update(best_round(relay_rounds, "relay_events_per_s"))
    in_order = min((r["yoi_in_order_fraction"] for r in yoi_rounds), default=None)
    result.metrics["yoi_in_order_fraction_all_rounds"] = in_order
    yoi_rate = result.metrics.get("yoi_events_per_s")
    result.ratio["yoi_x_relay"] = ratio(yoi_rate, result.ceiling.get("relay_events_per_s"))
    result.check("yoi_in_order_fraction_all_rounds", in_order, ">=", 1.0)
    result.check("yoi_x_relay", result.ratio["yoi_x_relay"], ">=", 0.7)
    result.loadgen["subscriber_processes"] = sizes.processes
    for side, figures in (("yoi", result.metrics), ("relay", result.ceiling)):
        cpu_s = figures.get(f"{side}_client_cpu_s")
        result.loadgen[f"client_cpu_s_{side}"] = cpu_s
        result.loadgen[f"client_events_per_cpu_s_{side}"] = ratio(
            figures.get(f"{side}_delivered"), cpu_s
        )
    result.notes.append(
        f"{sizes.subscribers} subscribers over {sizes.processes} client processes, best of "
        f"{rounds} alternating rounds; events/s = events delivered to all subscribers ÷ "
        f"(last delivery - input POST); the relay replays {replayed} events one XADD each"
    )
