"""`Member`: one runtime process of a fleet runtime (`python -m runtime_worker`, `yoi runtime`).

A member registers with its capacity and heartbeats; renews the leases of the Workers its
`Host` runs (one pipelined call, every third of the lease TTL); takes unhosted Workers up to its
fair share (placement hints make that immediate, a periodic sweep makes it certain); and runs
the fleet's scheduled work (arq). Each loop survives Redis going away: it backs off and carries
on, and a member that could not renew for a whole TTL gives its Workers up (their leases have
expired) and takes them again, under new epochs, when Redis is back.

Stop is two-phase with a hard deadline: stop taking work, leave the registry, hand idle Workers
back at once, let running turns finish for the grace period (then cancel them; their inputs stay
pending for the next host), hand everything back and hint the others to take over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import signal
import socket
from collections.abc import Awaitable, Callable, Iterable

from runtime_worker._backoff import Backoff
from runtime_worker.host import Host, ProviderFactory
from runtime_worker.placement import (
    HOSTABLE_STATES,
    alive_view,
    plan,
    preferred_first,
    target_for,
)
from runtime_worker.profiles import ProfileRegistry
from runtime_worker.runtime import Runtime
from runtime_worker.schedule import Scheduler
from runtime_worker.store import FleetStore, open_fleet_store
from runtime_worker.store._redis_members import MemberView
from shared.errors import RuntimeUnavailable, YoiError
from shared.models import MemberInfo, RuntimeKind
from shared.settings import Settings
from shared.timeutil import monotonic_s

log = logging.getLogger("yoi.member")

STOP_MARGIN_S = 5.0  # the hard deadline of stop(): the grace period plus this
ADOPT_BATCH = 500  # acquisitions per round trip (one pipeline) in a placement step
DEATH_MARGIN_S = 0.005  # look at a silent member this long after it counts as dead
RETRY_MARGIN_S = 0.005  # try a dead member's lease again this long after it expires
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def new_member_id() -> str:
    """`<hostname>-<pid>-<random>`: unique per process, readable in diagnostics, never a path."""
    host = _UNSAFE.sub("-", socket.gethostname()).strip("-.")[:40] or "member"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


class Member:
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
        self._live = 0  # live Workers seen by the last sweep (hints add to it)
        self._renewed_at = monotonic_s()
        self._sweep_due = True
        self._taking = False
        self._draining = False  # told to drain: takes nothing, hands idle Workers back
        self._stopping = False
        self._stopped = asyncio.Event()
        self._redis_back = asyncio.Event()
        self.failed: BaseException | None = None
        self._failure_stop: asyncio.Future[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every loop; none of them needs Redis to be up yet."""
        if self._tasks or self._stopping:
            return
        self._taking = True
        await self.host.start()
        self._spawn("heartbeat", self._every("heartbeat", self.settings.heartbeat_ms, self.beat))
        renew_ms = max(50, self.settings.lease_ttl_ms // 3)
        self._spawn("renew", self._every("lease renewal", renew_ms, self.renew))
        self._spawn("placement", self._placement_loop())
        self._spawn("schedule", self.scheduler.run())
        log.info(
            "member %s of runtime %s started (capacity %d)",
            self.member_id,
            self.store.runtime_id,
            self.settings.capacity,
        )

    async def wait(self) -> None:
        """Until stop() finished (or a loop failed and stop was started for it)."""
        await self._stopped.wait()

    async def stop(self, grace_s: float | None = None) -> None:
        """Hand every Worker back and leave. Idempotent; bounded by a hard deadline."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        self._taking = False
        grace = self.settings.drain_grace_s if grace_s is None else grace_s
        started = monotonic_s()
        try:
            async with asyncio.timeout(grace + STOP_MARGIN_S):
                await self._hand_back(grace)
        except TimeoutError:
            log.warning("stop passed its %.1fs deadline: the rest is left to lease expiry", grace)
        finally:
            for name in list(self._tasks):
                await self._cancel(name)
            if self._owns_store:
                await self.store.aclose()
            self._stopped.set()
        log.info("member %s stopped in %.2fs", self.member_id, monotonic_s() - started)

    async def _hand_back(self, grace_s: float) -> None:
        await self._cancel("placement")
        await self._cancel("heartbeat")
        try:  # leave first, so the others' fair share counts without this member
            await self.store.forget_member(self.member_id)
        except RuntimeUnavailable:
            log.warning("could not leave the member registry: Redis is unavailable")
        released: list[str] = []
        try:
            released = await self._release_idle()
        except RuntimeUnavailable:
            log.warning("could not hand idle workers back: Redis is unavailable")
        await self._announce(released)
        await asyncio.gather(self._stop_scheduler(), self._stop_host(grace_s))
        await self._cancel("renew")

    async def _stop_scheduler(self) -> None:
        await self.scheduler.drain()
        await self._cancel("schedule")

    async def _stop_host(self, grace_s: float) -> None:
        busy = list(self.host.hosted())
        await self.host.stop(grace_s)  # drains, then releases every lease left
        await self._announce(busy)

    async def _release_idle(self) -> list[str]:
        """Hand back every Worker idle right now (checked atomically with each lease)."""
        return await self.host.hand_back_idle(self.host.hosted())

    async def _announce(self, worker_ids: list[str]) -> None:
        try:
            await self.store.announce_placement(worker_ids)
        except RuntimeUnavailable:
            log.warning("placement hints for %d workers dropped", len(worker_ids))

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

    # -- one step each (the loops run these; tests call them directly) ---------------------------

    async def beat(self) -> None:
        """Heartbeat, and refresh the view of alive members. A member told to drain (`yoi
        drain`) stops taking Workers and hands back each one as it turns idle."""
        if not self._draining and await self.store.member_draining(self.member_id):
            log.info("member %s drains: handing its workers back", self.member_id)
            self._draining, self._taking = True, False
        await self.store.heartbeat(self.member_id, self.settings.capacity, self.host.hosted_count)
        await self._refresh_members()
        if self._draining and not self._stopping and self.host.hosted_count:
            await self._announce(await self._release_idle())

    async def _refresh_members(self) -> None:
        self._note_members(await self.store.member_views())

    def _note_members(self, views: list[MemberView]) -> None:
        """Keep the registry's view; a member that was alive and is not any more (dead, or
        gone) calls for a sweep now, and the next one that would die if silent is timed."""
        self._members = [view.info for view in views]
        alive = {view.info.member_id for view in views if view.info.alive}
        alive.add(self.member_id)
        if self._alive - alive:
            self._sweep_due = True
        self._alive = alive
        left_ms = [
            self.store.member_alive_ms - view.silent_ms
            for view in views
            if view.info.alive and view.info.member_id != self.member_id
        ]
        now = monotonic_s()
        self._death_at = now + min(left_ms) / 1000 + DEATH_MARGIN_S if left_ms else None

    async def renew(self) -> None:
        """Extend every lease held; drop the Workers whose lease is lost."""
        leases = self.host.hosted()
        ttl_ms = self.settings.lease_ttl_ms
        try:
            result = await self.store.renew(self.member_id, leases, ttl_ms) if leases else {}
        except RuntimeUnavailable:
            if monotonic_s() - self._renewed_at > ttl_ms / 1000 and self.host.hosted_count:
                log.warning("leases expired while Redis was away: giving every worker up")
                await self._drop(self.host.hosted(), release=False)
            raise
        self._renewed_at = monotonic_s()
        lost = {w: e for w, e in leases.items() if not result.get(w, True)}
        if lost:
            log.info("%d leases lost: other members host those workers now", len(lost))
            await self._drop(lost, release=False)

    async def place(self) -> int:
        """A placement sweep: drop ended Workers, take unhosted ones up to the fair share, hand
        idle ones back when above it. Returns how many Workers were taken."""
        if not self._taking:
            return 0
        records = await self.store.placements()
        await self._refresh_members()
        hosted = self.host.hosted()
        members = alive_view(self._members, self.member_id, self.settings.capacity, len(hosted))
        step = plan(records, me=self.member_id, hosted=hosted, members=members)
        self._live = sum(1 for r in records if r.state in HOSTABLE_STATES)
        self._sweep_host({r.worker_id for r in records if r.queue_depth and r.worker_id in hosted})
        del records  # thousands of rows: not kept while the Workers are taken
        await self._drop({w: hosted[w] for w in step.drop}, release=True)
        taken = await self._take(step.reclaim, len(step.reclaim))
        for worker_id, epoch in step.disown.items():  # no lease, our name on it: clear it
            await self.store.release_many({worker_id: epoch}, self.member_id)
        await self._announce(list(step.disown))
        names = [m.member_id for m in members]
        taken += await self._take(preferred_first(step.take, self.member_id, names), step.want)
        if step.shed:
            # Idle in the snapshot, maybe not any more: only those idle now go (atomically).
            shed = await self.host.hand_back_idle({w: hosted[w] for w in step.shed if w in hosted})
            log.info("handed %d workers back to even out the fleet", len(shed))
            await self._announce(shed)
        return taken

    def _sweep_host(self, waiting: set[str]) -> None:
        """The host's sweep over what this one read (Workers it hosts with unfinished inputs),
        in a task of its own: pokes must not hold placement up."""
        sweeping = self._tasks.get("host-sweep")
        if waiting and (sweeping is None or sweeping.done()):
            self._spawn("host-sweep", self.host.sweep(waiting))

    async def take_hinted(self, worker_ids: list[str]) -> int:
        """Placement hints: try the named Workers now, within the fair share."""
        if not self._taking or not worker_ids:
            return 0
        await self._refresh_members()  # a leaving member is gone from it already
        fresh = [w for w in worker_ids if not self.host.is_hosted(w)]
        self._live = max(self._live, self._live_estimate(fresh))
        return await self._take_share(fresh)

    async def _take_share(self, candidates: list[str]) -> int:
        """Take from `candidates` up to the fair share, this member's preferred ones first."""
        hosted = self.host.hosted_count
        members = alive_view(self._members, self.member_id, self.settings.capacity, hosted)
        want = target_for(self._live, members, self.member_id) - hosted
        order = preferred_first(candidates, self.member_id, [m.member_id for m in members])
        return await self._take(order, want)

    async def retake(self) -> int:
        """Try again the Workers whose lease a dead member held when last tried: it has
        expired by now."""
        candidates = [w for w in self._retry if not self.host.is_hosted(w)]
        self._retry.clear()
        self._retry_at = None
        if not self._taking or not candidates:
            return 0
        await self._refresh_members()
        return await self._take_share(candidates)

    def _live_estimate(self, fresh: list[str]) -> int:
        # New Workers raise the count; a handed-back one was counted already, which only makes
        # the estimate high (then a member may take one more than its share; a sweep evens out).
        return self._live + len(fresh)

    # -- internals -------------------------------------------------------------------------------

    async def _take(self, candidates: Iterable[str], want: int) -> int:
        """Acquire up to `want` of `candidates` in order, a pipelined batch per round trip."""
        taken = 0
        pending = list(candidates)
        while pending and taken < want and self._taking:
            size = min(ADOPT_BATCH, want - taken)
            batch, pending = pending[:size], pending[size:]
            taken += await self._adopt(batch)
        return taken

    async def _adopt(self, worker_ids: list[str]) -> int:
        ttl_ms = self.settings.lease_ttl_ms
        answers = await self.store.acquire_many(worker_ids, self.member_id, ttl_ms)
        now = monotonic_s()
        taken = 0
        for worker_id, got in answers.items():
            if got.epoch:
                try:
                    self.host.host_acquired(
                        worker_id,
                        got.epoch,
                        profile=got.profile,
                        display_name=got.display_name,
                        busy=got.busy,
                    )
                except YoiError as exc:  # e.g. a profile this member does not know
                    log.warning("cannot host worker %s: %s", worker_id, exc.code)
                    await self.store.release_many({worker_id: got.epoch}, self.member_id)
                    continue
                taken += 1
            elif got.holder is not None and got.holder not in self._alive and got.expires_ms:
                # A dead member's lease, not expired yet: try again the moment it is.
                self._retry.add(worker_id)
                due = now + got.expires_ms / 1000 + RETRY_MARGIN_S
                self._retry_at = due if self._retry_at is None else min(self._retry_at, due)
        return taken

    async def _drop(self, leases: dict[str, int], *, release: bool) -> None:
        await self.host.drop_many(leases, release=release)  # those not re-taken meanwhile

    def _on_lost(self, worker_id: str) -> None:
        self._sweep_due = True

    async def _every(
        self, what: str, interval_ms: int, step: Callable[[], Awaitable[None]]
    ) -> None:
        backoff = Backoff(what, log)
        while True:
            try:
                await step()
            except RuntimeUnavailable as exc:
                await self._pause(backoff.failed(exc.message))
                continue
            if backoff.succeeded():
                self._redis_back.set()  # cut the other loops' backoff short
                self._redis_back = asyncio.Event()
            await asyncio.sleep(interval_ms / 1000)

    async def _pause(self, delay_s: float) -> None:
        """A backoff delay that ends early when another loop sees Redis answer again."""
        back = self._redis_back
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(back.wait(), delay_s)

    async def _placement_loop(self) -> None:
        """Hints as they come (blocking read), and a full sweep every `sweep_interval_ms`. A
        member that stops heartbeating is noticed the moment it counts as dead (a sweep then
        takes its Workers), and a lease of it that outlived its heartbeat is tried again the
        moment it expires: takeover within the lease TTL, without sweeping more often."""
        backoff = Backoff("placement", log)
        interval_s = self.settings.sweep_interval_ms / 1000
        last_id: str | None = None
        next_sweep = 0.0
        while True:
            try:
                if last_id is None:
                    last_id = await self.store.placement_cursor()
                if self._death_at is not None and monotonic_s() >= self._death_at:
                    await self._refresh_members()  # a death found here makes a sweep due
                if self._sweep_due or monotonic_s() >= next_sweep:
                    self._sweep_due = False
                    await self.place()
                    next_sweep = monotonic_s() + interval_s
                if self._retry_at is not None and monotonic_s() >= self._retry_at:
                    await self.retake()
                wake_at = min(
                    at for at in (next_sweep, self._death_at, self._retry_at) if at is not None
                )
                wait_ms = int(max(0.0, wake_at - monotonic_s()) * 1000)
                worker_ids, last_id = await self.store.wait_placement(last_id, wait_ms)
                await self.take_hinted(worker_ids)
            except RuntimeUnavailable as exc:
                self._sweep_due = True
                await self._pause(backoff.failed(exc.message))
                continue
            backoff.succeeded()


async def run_member(settings: Settings, *, handle_signals: bool = True) -> None:
    """Run a member until SIGTERM/SIGINT (or until cancelled), then stop gracefully."""
    member = Member(settings)
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
    stopper: set[asyncio.Task[None]] = set()

    def on_signal(signum: int) -> None:
        if not stopper:
            log.info("%s: stopping", signal.Signals(signum).name)
            stopper.add(loop.create_task(member.stop()))

    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await member.start()
        await member.wait()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        await member.stop()  # no-op when a signal stopped it already
        await asyncio.gather(*stopper, return_exceptions=True)
    if member.failed is not None:
        raise member.failed


__all__ = ["Member", "new_member_id", "run_member"]
