"""Yoi's HTTP API as the scenarios use it (SPEC §5), over the raw loopback client."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.rawhttp import Connection, Pool
from bench.yoi_stack import RUNTIME_ID

WORKERS = f"/api/runtimes/{RUNTIME_ID}/workers"
PAGE_LIMIT = 1000


def inputs_path(worker_id: str) -> str:
    return f"{WORKERS}/{worker_id}/inputs"


def events_path(worker_id: str, after: str | None = None, wait_ms: int = 0) -> str:
    query = [f"limit={PAGE_LIMIT}"]
    if after is not None:
        query.append(f"after={after}")
    if wait_ms:
        query.append(f"wait_ms={wait_ms}")
    return f"{WORKERS}/{worker_id}/events?{'&'.join(query)}"


def stream_path(worker_id: str, after: str) -> str:
    return f"{WORKERS}/{worker_id}/events/stream?after={after}"


async def create_workers(pool: Pool, count: int, prefix: str = "bench") -> list[str]:
    """Create `count` Workers concurrently over the pool; their ids in creation order."""

    async def one(index: int) -> str:
        body = {"display_name": f"{prefix}-{index}"}
        detail = await pool.json("POST", WORKERS, body)
        return str(detail["worker_id"])

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def create_workers_batched(
    pool: Pool, count: int, prefix: str = "bench", *, batch: int, concurrency: int
) -> list[str]:
    """Create `count` Workers through the batch create (`POST …/workers:batch`), `batch` per
    request, `concurrency` requests in flight; their ids in creation order."""
    gate = asyncio.Semaphore(concurrency)

    async def part(start: int) -> list[str]:
        names = range(start, min(start + batch, count))
        body = {"workers": [{"display_name": f"{prefix}-{index}"} for index in names]}
        async with gate:
            made = await pool.json("POST", f"{WORKERS}:batch", body)
        return [str(worker["worker_id"]) for worker in made["workers"]]

    parts = await asyncio.gather(*(part(start) for start in range(0, count, batch)))
    return [worker_id for ids in parts for worker_id in ids]


async def worker_states(conn: Connection) -> dict[str, str]:
    listing = await conn.json("GET", WORKERS)
    return {w["worker_id"]: w["state"] for w in listing["workers"]}


async def wait_hosted(conn: Connection, worker_ids: list[str], timeout_s: float) -> float:
    """Poll the Worker list until none of `worker_ids` is `pending`; the monotonic time when
    that was first seen. Raises TimeoutError with how many were still pending."""
    wanted = set(worker_ids)
    deadline = time.monotonic() + timeout_s
    pending = len(wanted)
    while time.monotonic() < deadline:
        states = await worker_states(conn)
        pending = sum(1 for wid in wanted if states.get(wid, "pending") == "pending")
        if pending == 0:
            return time.monotonic()
        # listing 10,000 Workers is work for the gateway too: poll big fleets less often
        await asyncio.sleep(0.1 if len(wanted) <= 1000 else 0.25)
    raise TimeoutError(f"{pending} of {len(wanted)} workers still pending after {timeout_s:.0f} s")


async def hosted_total(conn: Connection) -> int:
    """Workers the fleet's members host, from their last heartbeats (one small read)."""
    listing = await conn.json("GET", f"/api/runtimes/{RUNTIME_ID}/members")
    return sum(int(m["hosted"]) for m in listing["members"] if m.get("alive"))


HOSTED_POLL_S = 0.1  # the members' hosted counts: one small read of the registry


async def wait_all_hosted(conn: Connection, total: int, timeout_s: float, poll_s: float) -> float:
    """`wait_hosted` for a fleet of `total` Workers without listing all of them every poll:
    the members' hosted counts (a small read, polled every `HOSTED_POLL_S`; each member
    reports its count within a tenth of a second of a change) say when, and one listing
    confirms none is `pending`. The monotonic time the counts first said so, not the end of
    the listing: listing 100,000 Workers takes seconds, which would time the bench, not the
    fleet. A listing that still finds one pending waits `poll_s` (a listing loads the fleet
    it measures) and the counts are read again."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await hosted_total(conn) >= total:
            seen = time.monotonic()
            states = await worker_states(conn)
            pending = sum(1 for state in states.values() if state == "pending")
            if len(states) >= total and pending == 0:
                return seen
            await asyncio.sleep(poll_s)
        else:
            await asyncio.sleep(HOSTED_POLL_S)
    hosted = await hosted_total(conn)
    raise TimeoutError(f"{hosted} of {total} workers hosted after {timeout_s:.0f} s")


async def worker_detail(conn: Connection | Pool, worker_id: str) -> dict[str, Any]:
    result: dict[str, Any] = await conn.json("GET", f"{WORKERS}/{worker_id}")
    return result


async def runs_completed(conn: Connection) -> int:
    """Runs finished across the fleet, from the runtime's usage overview."""
    detail = await conn.json("GET", f"/api/runtimes/{RUNTIME_ID}")
    return int(detail["usage"]["runs"])


async def read_events(
    conn: Connection, worker_id: str, after: str | None, timeout_s: float, until: str | None = None
) -> list[dict[str, Any]]:
    """Every event after `after`, paging; with `until`, long-poll until an event of that type
    arrives (inclusive) or the deadline passes."""
    events: list[dict[str, Any]] = []
    cursor = after
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        wait_ms = 1000 if until is not None else 0
        page = await conn.json("GET", events_path(worker_id, cursor, wait_ms))
        batch = page["events"]
        events.extend(batch)
        cursor = page["cursor"]
        if until is not None and any(e["type"] == until for e in batch):
            return events
        if until is None and len(batch) < PAGE_LIMIT:
            return events
    if until is not None:
        raise TimeoutError(f"no {until} on worker {worker_id} within {timeout_s:.0f} s")
    return events
