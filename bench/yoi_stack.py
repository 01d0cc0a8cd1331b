"""Start the system under test: a Yoi gateway and N runtime processes on a private Redis."""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from bench.procs import ManagedProcess, free_port, http_ok, wait_until

RUNTIME_ID = "fleet"
READY_TIMEOUT_S = 30.0
MEMBERS_TIMEOUT_S = 20.0
DEFAULT_CAPACITY = 20_000


def yoi_argv(*args: str) -> list[str]:
    """The `yoi` console script of this venv (or its entry point when it is not installed);
    `BENCH_YOI="cmd args"` runs another build, e.g. an installed release, instead."""
    override = os.environ.get("BENCH_YOI")
    if override:
        return [*shlex.split(override), *args]
    script = Path(sys.executable).parent / "yoi"
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from gateway.cli import main; main()", *args]


class HasUrl(Protocol):
    """One private Redis (`bench.redis_server`) or a private cluster (`bench.redis_cluster`):
    Yoi finds which from the server, as it does for a user's URL."""

    @property
    def url(self) -> str: ...


@dataclass
class YoiStack:
    port: int
    gateway: ManagedProcess
    runtimes: list[ManagedProcess]
    member_ids: list[str]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def member_of(self, member_id: str) -> ManagedProcess | None:
        for mid, proc in zip(self.member_ids, self.runtimes, strict=True):
            if mid == member_id:
                return proc
        return None


def _alive_members(base_url: str) -> set[str]:
    try:
        response = httpx.get(f"{base_url}/api/runtimes/{RUNTIME_ID}", timeout=2.0)
    except httpx.HTTPError:
        return set()
    if not response.is_success:
        return set()
    try:
        members = response.json()["diagnostics"]["members"]
    except (KeyError, TypeError, json.JSONDecodeError):
        return set()
    return {m["member_id"] for m in members if m.get("alive")}


@contextmanager
def yoi_stack(
    redis: HasUrl,
    log_dir: Path,
    runtimes: int = 2,
    env: Mapping[str, str] | None = None,
    capacity: int = DEFAULT_CAPACITY,
) -> Iterator[YoiStack]:
    """Gateway + `runtimes` runtime processes; yields once the gateway is ready and every
    member shows alive in the fleet's diagnostics. Members are named bench-m1…, so a scenario
    can map a Worker's `diagnostics.host` back to a process."""
    port = free_port()
    common = {
        "YOI_REDIS_URL": redis.url,
        "YOI_FLEETS": RUNTIME_ID,
        "YOI_RUNTIME_ID": RUNTIME_ID,
        "YOI_CAPACITY": str(capacity),
        # Its own embedded store: the default data dir is the machine's, and a gateway refuses
        # one that another (a developer's, another run's) holds.
        "YOI_DATA_DIR": str(log_dir / "gateway-data"),
        **(env or {}),
    }
    with ExitStack() as stack:
        gateway = ManagedProcess(
            "yoi-gateway",
            yoi_argv("gateway", "--host", "127.0.0.1", "--port", str(port),
                     "--redis-url", redis.url, "--fleet", RUNTIME_ID),
            log_dir,
            env=common,
        )  # fmt: skip
        stack.callback(gateway.stop)
        member_ids = [f"bench-m{i + 1}" for i in range(runtimes)]
        procs: list[ManagedProcess] = []
        for member_id in member_ids:
            proc = ManagedProcess(
                f"yoi-runtime-{member_id}",
                yoi_argv("runtime", "--redis-url", redis.url, "--runtime-id", RUNTIME_ID,
                         "--capacity", str(capacity)),
                log_dir,
                env={**common, "YOI_MEMBER_ID": member_id},
            )  # fmt: skip
            stack.callback(proc.stop)  # ExitStack unwinds in reverse: runtimes stop first
            procs.append(proc)
        base_url = f"http://127.0.0.1:{port}"
        wait_until(
            http_ok(f"{base_url}/readyz"), READY_TIMEOUT_S, "gateway did not become ready", gateway
        )
        for proc in procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited {proc.popen.returncode}: {proc.log_tail()}")
        wait_until(
            lambda: len(_alive_members(base_url)) >= runtimes,
            MEMBERS_TIMEOUT_S,
            f"{runtimes} fleet members did not show alive in diagnostics",
        )
        yield YoiStack(port=port, gateway=gateway, runtimes=procs, member_ids=member_ids)
