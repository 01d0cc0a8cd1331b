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

A `Member` is built in layers, one module each: `_member_base` (state, owned loops),
`_member_placement` (heartbeat, renewal, placement), and here its lifecycle.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from runtime_worker._member_base import new_member_id
from runtime_worker._member_placement import MemberPlacement
from shared.errors import RuntimeUnavailable
from shared.settings import Settings
from shared.timeutil import monotonic_s

log = logging.getLogger("yoi.member")

STOP_MARGIN_S = 5.0  # the hard deadline of stop(): the grace period plus this


class Member(MemberPlacement):
    """One runtime process of a fleet runtime: start it, wait on it, stop it."""

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every loop; none of them needs Redis to be up yet."""
        if self._tasks or self._stopping:
            return
        self._taking = True
        await self.host.start()
        beat = self._every(
            "heartbeat", self.settings.heartbeat_ms, self.beat, early=self._hosted_changed
        )
        self._spawn("heartbeat", beat)
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
