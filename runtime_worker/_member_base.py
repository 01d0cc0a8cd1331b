"""`MemberBase`: a fleet member's state, and the one way of owning loops its parts share.

Apart from `member.py` so placement (`_member_placement.py`) and lifecycle (`member.py`) stand
on one definition of what a member holds (its store, host, scheduler, its view of the fleet)
and one way of owning loops: each spawned, reaped loudly when it dies, cancelled on stop, and
backed off while Redis is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import socket
from collections.abc import Awaitable, Callable

from runtime_worker._backoff import Backoff
from runtime_worker.host import Host, ProviderFactory
from runtime_worker.profiles import ProfileRegistry
from runtime_worker.runtime import Runtime
from runtime_worker.schedule import Scheduler
from runtime_worker.store import FleetStore, open_fleet_store
from shared.errors import RuntimeUnavailable
from shared.models import MemberInfo, RuntimeKind
from shared.settings import Settings
from shared.timeutil import monotonic_s

log = logging.getLogger("yoi.member")

EARLY_GAP_MS = 100
"""A heartbeat woken early (the hosted count changed) comes at most this often: the registry
(operators, `GET …/members`) sees a member's count within this of a change, not a heartbeat
later, at a few small writes a second."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def new_member_id() -> str:
    """`<hostname>-<pid>-<random>`: unique per process, readable in diagnostics, never a path."""
    host = _UNSAFE.sub("-", socket.gethostname()).strip("-.")[:40] or "member"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


class MemberBase:
    """What a member holds, and the loops it owns."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: FleetStore | None = None,
        profiles: ProfileRegistry | None = None,
        provider_factory: ProviderFactory | None = None,
    ) -> None:
        owns_store = store is None
        if store is None:
            store = open_fleet_store(settings, settings.runtime_id, role="runtime")
        self._owns_store = owns_store
        self.settings = settings
        self.member_id = settings.member_id or new_member_id()
        self.store = store
        self.host = Host(
            store,
            runtime_id=store.runtime_id,
            member_id=self.member_id,
            profiles=profiles or ProfileRegistry(settings.profiles_dir),
            settings=settings,
            provider_factory=provider_factory,
            lease_ttl_ms=settings.lease_ttl_ms,
            own_sweep=False,  # `place` feeds it: one read of the fleet serves both sweeps
        )
        self.host.on_lost = self._on_lost
        self.scheduler = Scheduler(
            settings,
            store,
            Runtime(
                store.runtime_id,
                store,
                kind=RuntimeKind.FLEET,
                settings=settings,
                profiles=self.host.profiles,
            ),
        )
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._members: list[MemberInfo] = []
        self._alive: set[str] = {self.member_id}  # alive members as last seen, this one too
        self._death_at: float | None = None  # when the next silent member would count as dead
        self._retry: set[str] = set()  # Workers whose lease a dead member still holds
        self._retry_at: float | None = None  # when the first of those leases expires
        self._unmarked: set[str] = set()  # Workers given up unreleased, for the unhosted set
        self._live = 0  # live Workers seen by the last sweep (hints add to it)
        self._sweep_cost_s = 0.0  # what the last sweep's read and plan took (paces the next)
        self._hinted_at = -1e9  # when hints last had this member take Workers
        self._renewed_at = monotonic_s()  # the start of the last renewal that answered
        # Workers whose lease counts from another time than `_renewed_at`: taken since, or left
        # unanswered by their node since (worker id → the time their lease was last extended).
        self._lease_from: dict[str, float] = {}
        self._renew_partial = False  # the last renewal left some leases unanswered
        self._sweep_due = True
        self._taking = False
        self._draining = False  # told to drain: takes nothing, hands idle Workers back
        self._stopping = False
        self._stopped = asyncio.Event()
        self._redis_back = asyncio.Event()
        self._hosted_changed = asyncio.Event()  # wakes the heartbeat: the count to report
        self.failed: BaseException | None = None
        self._failure_stop: asyncio.Future[None] | None = None

    def _spawn(self, name: str, loop: Awaitable[None]) -> None:
        task = asyncio.ensure_future(loop)
        task.set_name(f"yoi-{name}")
        task.add_done_callback(self._reap)
        self._tasks[name] = task

    def _reap(self, task: asyncio.Task[None]) -> None:
        """A loop that dies of an unexpected error takes the member down with it, loudly."""
        if task.cancelled() or self._stopping:
            return
        exc = task.exception()
        if exc is not None:
            log.error("member loop %s failed: %s: %s", task.get_name(), type(exc).__name__, exc)
            self.failed = exc
            self._failure_stop = asyncio.ensure_future(self.stop())

    async def _cancel(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        while task is not None and not task.done():
            # Cancel again until it ends: an await deep inside may swallow one cancellation.
            task.cancel()
            await asyncio.wait([task], timeout=0.1)

    async def _release_idle(self) -> list[str]:
        """Hand back every Worker idle right now (checked atomically with each lease)."""
        return await self.host.hand_back_idle(self.host.hosted())

    async def _announce(self, worker_ids: list[str]) -> None:
        try:
            await self.store.announce_placement(worker_ids)
        except RuntimeUnavailable:
            log.warning("placement hints for %d workers dropped", len(worker_ids))

    async def _every(
        self,
        what: str,
        interval_ms: int,
        step: Callable[[], Awaitable[None]],
        *,
        early: asyncio.Event | None = None,
    ) -> None:
        """`step` every `interval_ms`; with `early`, also as soon as it is set, though not
        within `EARLY_GAP_MS` of the last step (the hosted count reported while it grows)."""
        backoff = Backoff(what, log)
        while True:
            began = monotonic_s()
            if early is not None:
                early.clear()  # a change from here on is seen by this step, or wakes the next
            try:
                await step()
            except RuntimeUnavailable as exc:
                await self._pause(backoff.failed(exc.message))
                continue
            if backoff.succeeded():
                self._redis_back.set()  # cut the other loops' backoff short
                self._redis_back = asyncio.Event()
            # Timed from the step's start: a slow step (a renewal one node held up) does not
            # push the next one later.
            due = began + interval_ms / 1000
            if early is not None:
                gap_s = min(EARLY_GAP_MS, interval_ms) / 1000
                await asyncio.sleep(max(0.0, began + gap_s - monotonic_s()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(early.wait(), max(0.0, due - monotonic_s()))
            else:
                await asyncio.sleep(max(0.0, due - monotonic_s()))

    async def _pause(self, delay_s: float) -> None:
        """A backoff delay that ends early when another loop sees Redis answer again."""
        back = self._redis_back
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(back.wait(), delay_s)

    def _on_lost(self, worker_id: str) -> None:
        """A drain found its lease lost: the next sweep of the unhosted reads the Worker (a
        full sweep per lost lease would read the whole fleet each time)."""
        self._unmarked.add(worker_id)

    async def stop(self, grace_s: float | None = None) -> None:
        """`Member.stop`, declared here because `_reap` starts it when a loop fails."""
        raise NotImplementedError
