"""`overload`: 10x the sustainable input rate for 10 s against a fleet with a queue bound
(`YOI_MAX_QUEUED_INPUTS`): accepted inputs keep a bounded latency, the rest are shed with 429,
and every accepted input (every 202) gets its `run_finished`.

The ceiling is measured first in the same run: every Worker's queue kept at its bound (a 429
waits for one of its runs to end) gives the completed runs per second the fleet sustains. The
overload is open loop: POSTs due on a fixed schedule at 10x that rate, rotated over the
Workers, whatever the answers. An accepted input's latency is its `run_finished` time minus
when its POST left; the same from when it was due is reported beside it (it adds the time the
sender itself fell behind, on a shared machine mostly waiting for a free connection)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from bench.harness import Context, recorded
from bench.rawhttp import Connection, Pool
from bench.redis_server import private_redis
from bench.results import ScenarioResult
from bench.stats import ratio, summarize_ms
from bench.yoi_api import create_workers, inputs_path, read_events, runs_completed, wait_hosted
from bench.yoi_stack import yoi_stack

WORKERS = 10
MAX_QUEUED = 2
ECHO_DELAY_MS = 25
TEXT = " ".join(f"w{i}" for i in range(20))  # ~20 tokens at 25 ms: a run of about 0.5 s
OVERLOAD_X = 10
SENDERS = 128  # connections the open-loop schedule is issued over
DRAIN_TIMEOUT_S = 60.0


@dataclass
class Overload:
    statuses: Counter[int] = field(default_factory=Counter)
    due: dict[str, float] = field(default_factory=dict)  # accepted input_id → when it was due
    sent: dict[str, float] = field(default_factory=dict)  # accepted input_id → when it left
    late_s: list[float] = field(default_factory=list)  # how far behind schedule each POST left


def _body() -> dict[str, str]:
    return {"text": TEXT, "strategy": "enqueue"}


async def _keep_full(port: int, worker_id: str, until: float) -> None:
    """Keep the Worker's queue at its bound until `until`: send; on a 429 wait for one of its
    runs to finish (a place freed), then send again. The Worker never idles."""
    conn = Connection("127.0.0.1", port)
    cursor: str | None = None
    try:
        while time.monotonic() < until:
            response = await conn.request("POST", inputs_path(worker_id), _body())
            if response.status == 202:
                cursor = cursor or response.json()["cursor"]
                continue
            if response.status != 429:
                raise RuntimeError(f"ceiling: POST answered {response.status}")
            events = await read_events(conn, worker_id, cursor, 30.0, until="run_finished")
            cursor = events[-1]["cursor"] if events else cursor
    finally:
        await conn.close()


async def _ceiling(port: int, worker_ids: list[str], duration_s: float) -> float:
    """Completed runs per second with every Worker's queue kept full (its saturation)."""
    conn = Connection("127.0.0.1", port)
    try:
        before = await runs_completed(conn)
        started = time.monotonic()
        await asyncio.gather(*(_keep_full(port, w, started + duration_s) for w in worker_ids))
        return (await runs_completed(conn) - before) / (time.monotonic() - started)
    finally:
        await conn.close()


async def _open_loop(
    port: int, worker_ids: list[str], rate: float, duration_s: float
) -> tuple[Overload, float]:
    found = Overload()
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(SENDERS):
        idle.put_nowait(Connection("127.0.0.1", port))
    count = int(rate * duration_s)
    start_wall, start = time.time(), time.monotonic()

    async def one(index: int) -> None:
        due = start + index / rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        conn = await idle.get()
        try:
            found.late_s.append(time.monotonic() - due)
            left = start_wall + (time.monotonic() - start)
            path = inputs_path(worker_ids[index % len(worker_ids)])
            response = await conn.request("POST", path, _body())
            found.statuses[response.status] += 1
            if response.status == 202:
                input_id = response.json()["input_id"]
                found.due[input_id] = start_wall + index / rate
                found.sent[input_id] = left
        except (OSError, TimeoutError):
            found.statuses[0] += 1
        finally:
            idle.put_nowait(conn)

    await asyncio.gather(*(one(i) for i in range(count)))
    elapsed = time.monotonic() - start
    while not idle.empty():
        await idle.get_nowait().close()
    return found, elapsed


async def _finished_at(port: int, worker_ids: list[str], wanted: set[str]) -> dict[str, float]:
    """`run_finished` time of each wanted input, read from the Workers' event streams."""
    conn = Connection("127.0.0.1", port)
    finished: dict[str, float] = {}
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            for worker_id in worker_ids:
                for event in await read_events(conn, worker_id, None, 30.0):
                    if event["type"] == "run_finished" and event["input_id"] in wanted:
                        finished[event["input_id"]] = float(event["ts"])
            if len(finished) == len(wanted):
                break
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
    return finished


async def _measure(port: int, ceiling_s: float, overload_s: float) -> dict[str, float]:
    pool, conn = Pool("127.0.0.1", port, 4), Connection("127.0.0.1", port)
    try:
        worker_ids = await create_workers(pool, WORKERS, prefix="overload")
        await wait_hosted(conn, worker_ids, timeout_s=60)
    finally:
        await conn.close()
        await pool.close()
    sustainable = await _ceiling(port, worker_ids, ceiling_s)
    offered = sustainable * OVERLOAD_X
    found, elapsed = await _open_loop(port, worker_ids, offered, overload_s)
    finished = await _finished_at(port, worker_ids, set(found.due))
    latencies = [finished[i] - sent for i, sent in found.sent.items() if i in finished]
    from_due = [finished[i] - due for i, due in found.due.items() if i in finished]
    sent = sum(found.statuses.values())
    return {
        "sustainable_runs_per_s": round(sustainable, 1),
        "offered_rps": round(sent / elapsed, 1),
        "accepted": float(len(found.due)),
        "accepted_per_s": round(len(found.due) / elapsed, 1),
        "shed_429": float(found.statuses[429]),
        "other_status": float(sent - found.statuses[202] - found.statuses[429]),
        "lost": float(len(found.due) - len(finished)),
        "sender_late_p99_ms": summarize_ms(found.late_s, "late")["late_p99_ms"],
        **summarize_ms(latencies, "accepted_latency"),
        "accepted_latency_from_due_p99_ms": summarize_ms(from_due, "d")["d_p99_ms"],
    }


def run(ctx: Context, result: ScenarioResult) -> None:
    ceiling_s = ctx.pick(10.0, 4.0)
    overload_s = ctx.pick(10.0, 4.0)
    env = {"YOI_MAX_QUEUED_INPUTS": str(MAX_QUEUED), "YOI_ECHO_DELAY_MS": str(ECHO_DELAY_MS)}
    with (
        recorded(result, "overload"),
        private_redis(ctx.log_dir) as redis,
        yoi_stack(redis, ctx.log_dir, runtimes=2, env=env) as stack,
    ):
        measured = asyncio.run(_measure(stack.port, ceiling_s, overload_s))
        result.ceiling["sustainable_runs_per_s"] = measured.pop("sustainable_runs_per_s")
        result.metrics.update(measured)
    sustainable = result.ceiling.get("sustainable_runs_per_s")
    if sustainable is None:
        return
    run_s = WORKERS / sustainable  # one run on a Worker, at saturation
    bound_ms = (MAX_QUEUED + 1) * run_s * 1000  # the wait a full queue can hold, plus the run
    sent = result.metrics["accepted"] + result.metrics["shed_429"] + result.metrics["other_status"]
    result.ceiling["queue_bound_latency_ms"] = round(bound_ms, 1)
    result.ratio["offered_x_sustainable"] = ratio(result.metrics["offered_rps"], sustainable)
    result.ratio["accepted_x_sustainable"] = ratio(result.metrics["accepted_per_s"], sustainable)
    result.ratio["shed_fraction"] = ratio(result.metrics["shed_429"], sent)
    result.ratio["p99_x_queue_bound"] = ratio(result.metrics["accepted_latency_p99_ms"], bound_ms)
    result.check("lost", result.metrics["lost"], "<=", 0)
    result.check("other_status", result.metrics["other_status"], "<=", 0)
    result.check("offered_x_sustainable", result.ratio["offered_x_sustainable"], ">=", 8)
    result.check("shed_fraction", result.ratio["shed_fraction"], ">=", 0.8)
    result.check("p99_x_queue_bound", result.ratio["p99_x_queue_bound"], "<=", 2.0)
    result.loadgen["open_loop"] = f"{SENDERS} connections, POSTs due at {OVERLOAD_X}x the ceiling"
    result.notes.append(
        f"{WORKERS} Workers on 2 members, YOI_MAX_QUEUED_INPUTS={MAX_QUEUED}, echo "
        f"{ECHO_DELAY_MS} ms/token (~{len(TEXT.split())} tokens a run); ceiling: every queue "
        f"kept full for {ceiling_s:g} s; overload: open loop for {overload_s:g} s; latency = "
        "run_finished - when the POST left; bound = (queue bound + 1) x one run"
    )
