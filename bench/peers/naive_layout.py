"""The memory ceiling: the obvious per-Worker layout (an input stream, an event stream and a
transcript stream with their entries after one exchange, plus a metadata hash), measured as
`INFO memory` used_memory delta ÷ Workers on the same Redis build Yoi runs on."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

BATCH = 500


def _one_exchange(worker_id: str) -> list[dict[str, str]]:
    """The events one short echo exchange writes, shaped like Yoi's wire events."""
    now = time.time()
    base = {"v": "1", "worker_id": worker_id, "run_id": f"run-{worker_id}", "input_id": "in-1"}
    kinds: list[dict[str, object]] = [
        {"type": "user_message", "text": "hello"},
        {"type": "state_changed", "state": "running"},
        {"type": "run_started", "attempt": 1},
        {"type": "text_delta", "text": "echo: hello"},
        {"type": "text_done", "text": "echo: hello"},
        {"type": "usage", "input_tokens": 1, "output_tokens": 2},
        {"type": "run_finished", "result": "finished"},
        {"type": "state_changed", "state": "idle"},
    ]
    return [{"json": json.dumps({**base, **kind, "ts": now})} for kind in kinds]


def _write_worker(pipe: redis.client.Pipeline, worker_id: str) -> None:
    prefix = f"naive:{worker_id}"
    pipe.hset(
        f"{prefix}:meta",
        mapping={
            "worker_id": worker_id,
            "display_name": "bench",
            "profile": "companion",
            "state": "idle",
            "created_at": str(time.time()),
            "host": "member-1",
            "epoch": "1",
            "last_input_id": "in-1",
        },
    )
    pipe.xadd(f"{prefix}:inputs", {"input_id": "in-1", "text": "hello", "strategy": "reject"})
    for fields in _one_exchange(worker_id):
        pipe.xadd(f"{prefix}:events", fields)  # type: ignore[arg-type]
    pipe.xadd(f"{prefix}:transcript", {"role": "user", "text": "hello"})
    pipe.xadd(f"{prefix}:transcript", {"role": "assistant", "text": "echo: hello"})


def _used_memory(conn: redis.Redis) -> int:
    info: dict[str, Any] = conn.info("memory")  # type: ignore[assignment]
    return int(info["used_memory"])


def bytes_per_worker(conn: redis.Redis, workers: int) -> float:
    """Write `workers` naive layouts and return the used_memory delta per Worker."""
    before = _used_memory(conn)
    for start in range(0, workers, BATCH):
        pipe = conn.pipeline(transaction=False)
        for index in range(start, min(start + BATCH, workers)):
            _write_worker(pipe, f"w{index:06d}")
        pipe.execute()
    after = _used_memory(conn)
    return (after - before) / workers
