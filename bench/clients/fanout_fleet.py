"""The parent side of the fan-out clients: start subscriber processes, wait until every
subscription is open, then collect and merge what each process saw."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import ManagedProcess, python_module, wait_until

READY_TIMEOUT_S = 60.0


@dataclass
class FleetReport:
    subscribers: int
    done: int
    events: int
    hashes: dict[str, int]
    last_t: float
    resumes: int
    errors: list[str]
    client_cpu_s: float


def _lines(proc: ManagedProcess, prefix: str) -> list[str]:
    try:
        text = proc.log_path.read_text(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.startswith(prefix)]


def _printed(proc: ManagedProcess, prefix: str) -> Callable[[], bool]:
    return lambda: bool(_lines(proc, prefix))


def _exited(proc: ManagedProcess) -> Callable[[], bool]:
    return lambda: not proc.alive()


class SubscriberFleet:
    def __init__(self, procs: list[ManagedProcess]) -> None:
        self.procs = procs

    def wait_ready(self) -> None:
        for proc in self.procs:
            wait_until(
                _printed(proc, "READY"), READY_TIMEOUT_S, "subscribers did not connect", proc
            )

    def collect(self, timeout_s: float) -> FleetReport:
        """Wait for every process to print its result (they stop themselves at their own
        deadline, which is shorter than `timeout_s`) and merge the results."""
        deadline = time.monotonic() + timeout_s
        for proc in self.procs:
            remaining = max(0.1, deadline - time.monotonic())
            wait_until(_exited(proc), remaining, "subscribers did not finish")
        parts: list[dict[str, Any]] = []
        for proc in self.procs:
            lines = _lines(proc, "RESULT ")
            if not lines:
                raise RuntimeError(f"{proc.name} reported nothing: {proc.log_tail()}")
            parts.append(json.loads(lines[-1][len("RESULT ") :]))
        hashes: dict[str, int] = {}
        for part in parts:
            for digest, count in part["hashes"].items():
                hashes[digest] = hashes.get(digest, 0) + count
        return FleetReport(
            subscribers=sum(p["subscribers"] for p in parts),
            done=sum(p["done"] for p in parts),
            events=sum(p["events"] for p in parts),
            hashes=hashes,
            last_t=max(p["last_t"] for p in parts),
            resumes=sum(p["resumes"] for p in parts),
            errors=[e for p in parts for e in p["errors"]][:5],
            client_cpu_s=round(sum(p["cpu_s"] for p in parts), 2),
        )


@contextmanager
def subscriber_fleet(
    port: int, path: str, after: str, subscribers: int, processes: int, timeout_s: float,
    log_dir: Path, tag: str,
) -> Iterator[SubscriberFleet]:  # fmt: skip
    """`subscribers` SSE clients split over `processes` processes, stopped on the way out."""
    with ExitStack() as stack:
        procs = []
        share, extra = divmod(subscribers, processes)
        for index in range(processes):
            count = share + (1 if index < extra else 0)
            argv = python_module(
                "bench.clients.sse_fanout", "--port", str(port), "--path", path,
                "--after", after, "--subscribers", str(count), "--timeout-s", str(timeout_s),
            )  # fmt: skip
            procs.append(stack.enter_context(ManagedProcess(f"{tag}-subs-{index}", argv, log_dir)))
        yield SubscriberFleet(procs)
