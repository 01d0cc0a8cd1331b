"""Where a cluster's runs cost more than one server's: CPU time per completed run of the gateway,
the members and each redis-server, and Redis commands per run (`INFO commandstats`, commands run
inside scripts included), over one wrk round of `throughput`'s stack per side.

CPU per run is less noisy than runs/s on a shared machine (contention still inflates it).
`python -m bench.cluster_probe [--seconds S] [--sides one,cluster]`, under the bench lock."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import redis

from bench import wrk
from bench.redis_cluster import private_cluster
from bench.redis_server import private_redis
from bench.scenarios.throughput import BODY, CONNECTIONS, _drain, _setup_workers, _yoi_runs
from bench.yoi_api import inputs_path
from bench.yoi_stack import HasUrl, yoi_stack

_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _syscalls(pid: int) -> tuple[int, int]:
    """Read and write system calls of a process so far: its batches, roughly."""
    io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(io["syscr"]), int(io["syscw"])


def _commands(ports: Iterable[int]) -> dict[str, int]:
    """Calls per command so far, summed over the servers."""
    calls: dict[str, int] = {}
    for port in ports:
        with redis.Redis(host="127.0.0.1", port=port) as conn:
            stats: dict[str, Any] = conn.info("commandstats")
        for name, value in stats.items():
            name = name.removeprefix("cmdstat_")
            calls[name] = calls.get(name, 0) + int(value["calls"])
    return calls


def probe(
    target: HasUrl, ports: list[int], redis_pids: list[int], seconds: float, log_dir: Path
) -> dict[str, Any]:
    """One wrk round on a fresh stack: per-run CPU (ms) and read/write system calls of each
    process, and commands per run."""
    with yoi_stack(target, log_dir, runtimes=2) as stack:
        worker_ids = asyncio.run(_setup_workers(stack.port))
        paths = [inputs_path(w) for w in worker_ids]
        counter = _yoi_runs(stack.base_url)
        pids = {"gateway": stack.gateway.pid} | {
            m: p.pid for m, p in zip(stack.member_ids, stack.runtimes, strict=True)
        }
        pids |= {f"redis{i}": pid for i, pid in enumerate(redis_pids)}
        runs0, cpu0, redis0 = counter(), {k: _cpu_s(p) for k, p in pids.items()}, _commands(ports)
        calls0 = {k: _syscalls(p) for k, p in pids.items()}
        started = time.monotonic()
        load = wrk.run_wrk(stack.port, paths, BODY, seconds, connections=CONNECTIONS)
        count, finished = _drain(counter, runs0 + load.ok, timeout_s=max(60.0, seconds * 4))
        cpu1, redis1 = {k: _cpu_s(p) for k, p in pids.items()}, _commands(ports)
        calls1 = {k: _syscalls(p) for k, p in pids.items()}
    runs = count - runs0
    out: dict[str, Any] = {
        "runs": runs,
        "runs_per_s": round(runs / (finished - started), 1),
        "ms_per_run": {k: round((cpu1[k] - cpu0[k]) * 1000 / runs, 3) for k in pids},
    }
    out["ms_per_run"]["members"] = round(
        sum(v for k, v in out["ms_per_run"].items() if k.startswith("bench-m")), 3
    )
    out["ms_per_run"]["redis"] = round(
        sum(v for k, v in out["ms_per_run"].items() if k.startswith("redis")), 3
    )
    out["reads_writes_per_run"] = {
        k: [round((calls1[k][i] - calls0[k][i]) / runs, 3) for i in (0, 1)] for k in pids
    }
    calls = {name: n - redis0.get(name, 0) for name, n in redis1.items()}
    out["commands_per_run"] = {
        k: round(v / runs, 3) for k, v in sorted(calls.items(), key=lambda kv: -kv[1]) if v
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sides", default="one,cluster")
    parser.add_argument(
        "--primaries", type=int, default=3, help="1 isolates cluster mode's own cost"
    )
    args = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="cluster-probe-"))
    results: dict[str, Any] = {"load_1m": os.getloadavg()[0]}
    for side in args.sides.split(","):
        if side == "one":
            with private_redis(log_dir) as server:
                results["one"] = probe(
                    server, [server.port], [server.proc.pid], args.seconds, log_dir / "one"
                )
        else:
            with private_cluster(log_dir, primaries=args.primaries) as cluster:
                ports = [s.port for s in cluster.servers]
                pids = [s.proc.pid for s in cluster.servers if s.proc is not None]
                results["cluster"] = probe(cluster, ports, pids, args.seconds, log_dir / "cluster")
    results["load_1m_end"] = os.getloadavg()[0]
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
