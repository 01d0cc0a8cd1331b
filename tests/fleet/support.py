"""Helpers of the fleet tests: member processes, and reading a fleet's state from Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

from runtime_worker.runtime import Runtime
from runtime_worker.store.base import WorkerRecord
from runtime_worker.store.redis import RedisStore
from shared.errors import RuntimeUnavailable
from shared.events import Event, RunStarted
from shared.models import CreateWorker
from tests.helpers import wait_until

E = TypeVar("E")

LEASE_TTL_MS = 1000
HEARTBEAT_MS = 200
SWEEP_INTERVAL_MS = 200

FAST_ENV = {
    "YOI_LEASE_TTL_MS": str(LEASE_TTL_MS),
    "YOI_HEARTBEAT_MS": str(HEARTBEAT_MS),
    "YOI_SWEEP_INTERVAL_MS": str(SWEEP_INTERVAL_MS),
    "YOI_FLUSH_INTERVAL_MS": "10",
    "YOI_SCHEDULE_TICK_S": "1",
    "YOI_SCHEDULE_POLL_S": "0.1",
    "YOI_DRAIN_GRACE_S": "5",
    "YOI_ECHO_DELAY_MS": "0",
}


class MemberProc:
    """One `python -m runtime_worker` process; its log goes to a file for post-mortems."""

    def __init__(self, member_id: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self.member_id = member_id
        self.proc = proc
        self.log_path = log_path

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait_exit(self, timeout_s: float = 15) -> int:
        return self.proc.wait(timeout=timeout_s)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class Fleet:
    """Starts member processes of one runtime in one namespace and cleans up after them."""

    def __init__(self, redis_url: str, namespace: str, workdir: Path) -> None:
        self.redis_url = redis_url
        self.namespace = namespace
        self.workdir = workdir
        self.members: dict[str, MemberProc] = {}

    def start(
        self,
        member_id: str,
        *,
        capacity: int = 1000,
        raw_env: dict[str, str] | None = None,
        **env: str,
    ) -> MemberProc:
        """`env`: settings (`echo_delay_ms="20"` → YOI_ECHO_DELAY_MS); `raw_env` as given."""
        environ = {
            **(raw_env or {}),
            **os.environ,
            **FAST_ENV,
            "YOI_NAMESPACE": self.namespace,
            "PYTHONUNBUFFERED": "1",
            **{f"YOI_{k.upper()}": v for k, v in env.items()},
        }
        log_path = self.workdir / f"{member_id}.log"
        with log_path.open("ab") as log_file:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "runtime_worker",
                    "--redis-url",
                    self.redis_url,
                    "--runtime-id",
                    "fleet",
                    "--capacity",
                    str(capacity),
                    "--member-id",
                    member_id,
                ],
                env=environ,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        member = self.members[member_id] = MemberProc(member_id, proc, log_path)
        return member

    def stop_all(self) -> None:
        for member in self.members.values():
            if member.alive:
                member.signal(signal.SIGCONT)
                member.signal(signal.SIGKILL)
        for member in self.members.values():
            member.proc.wait(timeout=10)

    def logs(self) -> str:
        return "\n".join(f"--- {m}\n{p.log()[-4000:]}" for m, p in self.members.items())


def fleet_client(redis_url: str, namespace: str) -> Runtime:
    from shared.settings import Settings

    return Runtime.fleet(
        "fleet",
        Settings(
            redis_url=redis_url,
            namespace=namespace,
            lease_ttl_ms=LEASE_TTL_MS,
            heartbeat_ms=HEARTBEAT_MS,
        ),
    )


def store_of(rt: Runtime) -> RedisStore:
    assert isinstance(rt.store, RedisStore)
    return rt.store


async def records(rt: Runtime) -> dict[str, WorkerRecord]:
    return {r.worker_id: r for r in await rt.store.list_workers()}


async def heartbeat_of(rt: Runtime, member_id: str) -> str | None:
    """A member's raw registry entry: it changes with every heartbeat."""
    store = store_of(rt)
    entry: str | None = await store.client.hget(store.keys.members(), member_id)  # type: ignore[misc]
    return entry


async def alive_members(rt: Runtime) -> set[str]:
    return {m.member_id for m in await rt.members() if m.alive}


async def wait_members(rt: Runtime, member_ids: Iterable[str], timeout_s: float = 20) -> None:
    wanted = set(member_ids)

    async def registered() -> bool:
        try:
            return wanted <= await alive_members(rt)
        except RuntimeUnavailable:  # the observer's read timed out (a loaded machine): not yet
            return False

    await wait_until(registered, timeout_s=timeout_s, what=f"members {sorted(wanted)} alive")


async def create_workers(rt: Runtime, count: int, name: str = "w") -> list[str]:
    created: list[str] = []
    for start in range(0, count, 25):
        batch = await asyncio.gather(
            *(
                rt.create_worker(CreateWorker(display_name=f"{name}{i}"))
                for i in range(start, min(count, start + 25))
            )
        )
        created.extend(d.worker_id for d in batch)
    return created


async def wait_hosted(rt: Runtime, worker_ids: Iterable[str], timeout_s: float = 20) -> None:
    wanted = set(worker_ids)

    async def all_hosted() -> bool:
        try:
            found = await records(rt)
        except RuntimeUnavailable:  # the observer's read timed out (a loaded machine): not yet
            return False
        return all(found[w].host is not None for w in wanted)

    await wait_until(all_hosted, timeout_s=timeout_s, what=f"{len(wanted)} workers hosted")


async def all_events(rt: Runtime, worker_id: str) -> list[Event]:
    events: list[Event] = []
    after: str | None = None
    while True:
        page = await rt.events(worker_id, after=after, limit=1000)
        if not page.events:
            return events
        events.extend(page.events)
        after = page.cursor


def of_type(events: Iterable[Event], kind: type[E], input_id: str | None = None) -> list[E]:
    """The events of one type (of one input, when given), typed."""
    return [
        e for e in events if isinstance(e, kind) and (input_id is None or e.input_id == input_id)
    ]


def attempts(events: Iterable[Event], input_id: str) -> list[int]:
    return [e.attempt for e in of_type(events, RunStarted, input_id)]


def finished_counts(events: Iterable[Event]) -> Counter[str]:
    return Counter(e.input_id or "" for e in events if e.type == "run_finished")


async def wait_finished(
    rt: Runtime, expected: dict[str, set[str]], timeout_s: float = 30
) -> dict[str, list[Event]]:
    """Until every expected input (worker → input ids) has a run_finished; every event read."""
    seen: dict[str, list[Event]] = {}

    async def done() -> bool:
        for worker_id, input_ids in expected.items():
            try:
                events = seen[worker_id] = await all_events(rt, worker_id)
            except RuntimeUnavailable:  # the observer's read timed out: look again
                return False
            if not input_ids <= set(finished_counts(events)):
                return False
        return True

    await wait_until(done, timeout_s=timeout_s, what="every input finished")
    return seen


def monotonic() -> float:
    return time.monotonic()
