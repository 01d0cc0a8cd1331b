"""How long one member's lease renewal takes on a private 3-primary Redis Cluster: N leases
spread over the slots as a member's Workers are, renewed with `RedisStore.renew` (the best and
the median of 5 after a warm-up). `python -m bench.renew_probe [--leases N]`, under the bench
lock; run it against another build with `PYTHONPATH=<its tree>`."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import redis

from bench.redis_cluster import private_cluster
from runtime_worker.store.redis import RedisStore
from shared.ids import new_id
from shared.settings import Settings

MEMBER = "m1"
TTL_MS = 60_000
ROUNDS = 5


async def _renewals(url: str, count: int) -> list[float]:
    settings = Settings(namespace="renew-probe")
    store = RedisStore.from_url(url, namespace="renew-probe", runtime_id="fleet", settings=settings)
    try:
        leases = {new_id(): 1 for _ in range(count)}
        with redis.RedisCluster.from_url(url) as admin:  # the leases alone: all renew.lua reads
            pipe = admin.pipeline(transaction=False)
            for worker_id in leases:
                pipe.set(store.keys.lease(worker_id), MEMBER, px=TTL_MS)
            pipe.execute()
        await store.renew(MEMBER, leases, TTL_MS)  # warm: scripts loaded, slot map read
        seconds = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            renewed = await store.renew(MEMBER, leases, TTL_MS)
            seconds.append(time.perf_counter() - started)
            if len(renewed) != count or not all(renewed.values()):
                raise RuntimeError("a lease was not renewed")
        return seconds
    finally:
        await store.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leases", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as log_dir, private_cluster(Path(log_dir)) as cluster:
        seconds = asyncio.run(_renewals(cluster.url, args.leases))
    report = {
        "leases": args.leases,
        "best_ms": round(min(seconds) * 1000, 1),
        "median_ms": round(statistics.median(seconds) * 1000, 1),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
