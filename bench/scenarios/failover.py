"""`failover`: kill -9 one of 3 runtime processes while 300 runs stream. Every input must end
with exactly one `run_finished`, and the dead member's Workers must move within the lease TTL
plus a second. Takeover is read from event timestamps (same machine, same clock): for each
Worker the dead member hosted, the first run_started or text_delta written after the kill.
Its cluster variant (`--cluster`) runs the same on a private 3-primary Redis Cluster."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.harness import Context, recorded
from bench.rawhttp import Connection, Pool
from bench.redis_cluster import cluster_shape, private_cluster
from bench.redis_server import private_redis
from bench.results import ScenarioResult
from bench.stats import percentile, ratio
from bench.yoi_api import (
    create_workers,
    events_path,
    inputs_path,
    read_events,
    wait_hosted,
    worker_detail,
)
from bench.yoi_stack import HasUrl, YoiStack, yoi_stack

WORKERS = 100
INPUTS_PER_WORKER = 3
WORDS = 50  # at 20 ms a word, a run streams for about a second
ECHO_DELAY_MS = 20
KILL_AFTER_S = 0.5
GRACE_S = 1.5


async def _collect(
    conn: Connection, worker_id: str, after: str, input_ids: set[str], deadline: float
) -> list[dict[str, Any]]:
    """Long-poll one Worker's events until each of `input_ids` has a run_finished."""
    events: list[dict[str, Any]] = []
    cursor = after
    finished: set[str] = set()
    while finished < input_ids and time.monotonic() < deadline:
        page = await conn.json("GET", events_path(worker_id, cursor, wait_ms=1000))
        for event in page["events"]:
            events.append(event)
            if event["type"] == "run_finished":
                finished.add(str(event.get("input_id")))
        cursor = page["cursor"]
    return events


async def _hosts(pool: Pool, worker_ids: list[str]) -> dict[str, str | None]:
    details = await asyncio.gather(*(worker_detail(pool, w) for w in worker_ids))
    return {d["worker_id"]: d.get("diagnostics", {}).get("host") for d in details}


def _takeovers(
    events: dict[str, list[dict[str, Any]]], orphans: list[str], killed_at: float
) -> list[float]:
    """Seconds from the kill to each orphaned Worker's first new run activity."""
    delays = []
    for worker_id in orphans:
        times = [
            float(e["ts"])
            for e in events[worker_id]
            if e["type"] in ("run_started", "text_delta") and float(e["ts"]) > killed_at
        ]
        delays.append(min(times) - killed_at if times else float("inf"))
    return delays


async def _failover(stack: YoiStack, ttl_s: float, result: ScenarioResult) -> None:
    pool = Pool("127.0.0.1", stack.port, 16)
    conns = [Connection("127.0.0.1", stack.port) for _ in range(WORKERS)]
    try:
        worker_ids = await create_workers(pool, WORKERS, prefix="failover")
        await wait_hosted(conns[0], worker_ids, timeout_s=30)
        starts = await asyncio.gather(*(worker_detail(pool, w) for w in worker_ids))
        cursors = {d["worker_id"]: str(d["cursor"]) for d in starts}
        text = " ".join(f"word{i}" for i in range(WORDS))
        wanted = {
            w: {f"fo-{n}-{k}" for k in range(INPUTS_PER_WORKER)} for n, w in enumerate(worker_ids)
        }
        await asyncio.gather(
            *(
                pool.json(
                    "POST", inputs_path(w), {"text": text, "input_id": i, "strategy": "enqueue"}
                )
                for w in worker_ids
                for i in sorted(wanted[w])
            )
        )
        await asyncio.sleep(KILL_AFTER_S)
        hosts = await _hosts(pool, worker_ids)
        victim, hosted = Counter(h for h in hosts.values() if h).most_common(1)[0]
        proc = stack.member_of(victim)
        if proc is None:
            raise RuntimeError(f"host {victim!r} is not one of our members {stack.member_ids}")
        killed_at = time.time()
        proc.kill9()
        deadline = time.monotonic() + ttl_s + INPUTS_PER_WORKER * WORDS * ECHO_DELAY_MS / 1000 + 30
        await asyncio.gather(
            *(
                _collect(c, w, cursors[w], wanted[w], deadline)
                for c, w in zip(conns, worker_ids, strict=True)
            )
        )
        await asyncio.sleep(GRACE_S)  # let a late duplicate, if any, land before the final read
        final = await asyncio.gather(
            *(
                read_events(c, w, cursors[w], timeout_s=30)
                for c, w in zip(conns, worker_ids, strict=True)
            )
        )
    finally:
        await asyncio.gather(*(c.close() for c in conns))
        await pool.close()
    events = dict(zip(worker_ids, final, strict=True))
    finishes = Counter(
        str(e.get("input_id"))
        for evs in events.values()
        for e in evs
        if e["type"] == "run_finished"
    )
    outcomes = Counter(
        str(e.get("result")) for evs in events.values() for e in evs if e["type"] == "run_finished"
    )
    all_inputs = [i for ids in wanted.values() for i in ids]
    orphans = [w for w, h in hosts.items() if h == victim]
    delays = _takeovers(events, orphans, killed_at)
    result.metrics.update(
        {
            "inputs": len(all_inputs),
            "lost": sum(1 for i in all_inputs if finishes[i] == 0),
            "duplicated": sum(1 for i in all_inputs if finishes[i] > 1),
            "finished": outcomes.get("finished", 0),
            "other_outcomes": sum(v for k, v in outcomes.items() if k != "finished"),
            "reruns_attempt_2plus": sum(
                1
                for evs in events.values()
                for e in evs
                if e["type"] == "run_started" and int(e.get("attempt", 1)) >= 2
            ),
            "orphaned_workers": len(orphans),
            "killed_member_hosted": hosted,
            "takeover_first_s": round(min(delays), 3) if delays else None,
            "takeover_p50_s": round(percentile(delays, 50), 3) if delays else None,
            "takeover_max_s": round(max(delays), 3) if delays else None,
        }
    )


@contextmanager
def _redis(ctx: Context, result: ScenarioResult) -> Iterator[HasUrl]:
    """One private Redis, or (`--cluster`) a private Redis Cluster."""
    if not ctx.cluster:
        with private_redis(ctx.log_dir) as redis:
            yield redis
        return
    with private_cluster(ctx.log_dir) as cluster:
        result.notes.append(f"on a Redis Cluster of {cluster_shape(cluster)}")
        yield cluster


def run(ctx: Context, result: ScenarioResult) -> None:
    ttl_ms = ctx.pick(5000, 3000)
    env = {"YOI_ECHO_DELAY_MS": str(ECHO_DELAY_MS), "YOI_LEASE_TTL_MS": str(ttl_ms)}
    result.ceiling["lease_ttl_s"] = ttl_ms / 1000
    with (
        _redis(ctx, result) as redis,
        recorded(result, "yoi"),
        yoi_stack(redis, ctx.log_dir, runtimes=3, env=env) as stack,
    ):
        asyncio.run(_failover(stack, ttl_ms / 1000, result))
    takeover = result.metrics.get("takeover_max_s")
    result.ratio["takeover_max_x_lease_ttl"] = ratio(takeover, ttl_ms / 1000)
    result.check("lost", result.metrics.get("lost"), "<=", 0)
    result.check("duplicated", result.metrics.get("duplicated"), "<=", 0)
    result.check("takeover_max_s", takeover, "<=", ttl_ms / 1000 + 1)
    result.notes.append(
        f"{WORKERS * INPUTS_PER_WORKER} inputs over {WORKERS} workers (enqueue), {WORDS} words at "
        f"{ECHO_DELAY_MS} ms; kill -9 of the busiest of 3 members {KILL_AFTER_S} s after the "
        "last input was accepted; takeover = slowest orphaned worker"
    )
