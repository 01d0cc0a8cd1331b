"""The floor under every latency number: two processes talking through Redis streams with
redis-py and nothing else (XADD request → XREADGROUP BLOCK → XADD reply → XREAD BLOCK).

Run: python -m bench.peers.pingpong {responder|requester} --port P [--count N]
The requester prints `{"samples_s": [...]}` on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import redis

REQUESTS = "pingpong:requests"
REPLIES = "pingpong:replies"
READY = "pingpong:ready"
GROUP = "responders"
WARMUP = 200
IDLE_EXIT_S = 60.0
BLOCK_MS = 1000


def respond(conn: redis.Redis, count: int) -> None:
    """Answer each request with one reply; exit after `count` requests or a long idle spell
    so a forgotten responder cannot outlive its scenario by much."""
    try:
        conn.xgroup_create(REQUESTS, GROUP, id="$", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    conn.set(READY, b"1")
    answered = 0
    idle_since = time.monotonic()
    while answered < count and time.monotonic() - idle_since < IDLE_EXIT_S:
        batch: Any = conn.xreadgroup(GROUP, "r1", {REQUESTS: ">"}, count=16, block=BLOCK_MS)
        for _stream, entries in batch or []:
            for entry_id, fields in entries:
                conn.xadd(REPLIES, {b"n": fields[b"n"]}, maxlen=10_000, approximate=True)
                conn.xack(REQUESTS, GROUP, entry_id)
                answered += 1
                idle_since = time.monotonic()


def request(conn: redis.Redis, count: int, timeout_s: float) -> list[float]:
    """`count` timed round trips after a warm-up; each waits for its own reply."""
    deadline = time.monotonic() + timeout_s
    while not conn.exists(READY):
        if time.monotonic() > deadline:
            raise TimeoutError("responder never became ready")
        time.sleep(0.01)
    last_id = b"0-0"
    samples: list[float] = []
    for n in range(WARMUP + count):
        if time.monotonic() > deadline:
            break
        start = time.perf_counter()
        conn.xadd(REQUESTS, {b"n": str(n).encode()}, maxlen=10_000, approximate=True)
        while True:
            reply: Any = conn.xread({REPLIES: last_id}, count=1, block=BLOCK_MS)
            if reply:
                last_id = reply[0][1][0][0]
                break
            if time.monotonic() > deadline:
                raise TimeoutError("no reply from responder")
        elapsed = time.perf_counter() - start
        if n >= WARMUP:
            samples.append(elapsed)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["responder", "requester"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--timeout-s", type=float, default=60.0)
    args = parser.parse_args()
    conn = redis.Redis(host="127.0.0.1", port=args.port)
    if args.role == "responder":
        respond(conn, WARMUP + args.count)
    else:
        json.dump({"samples_s": request(conn, args.count, args.timeout_s)}, sys.stdout)


if __name__ == "__main__":
    main()
