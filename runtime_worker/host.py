"""`Host`: runs the inputs of the Workers whose leases this member holds.

The same engine serves the embedded runtime (one implicit member, leases that never expire)
and every fleet member process. A Worker costs nothing while idle: no task, no blocking read.
A wake-up (`Store.wake_ups`: in process for the embedded runtime, pushed hints and a doorbell
for a fleet) or the periodic sweep starts one drain task per busy Worker, which runs its inputs
in order until the stream holds nothing unacknowledged. Running one taken input (outcome,
provider stream, billing) is `TurnRunner`'s, in `_turn_runner.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping

from runtime_worker._hosted import NOT_HOSTED, Hosted, drained
from runtime_worker._turn_runner import ProviderFactory, TurnRunner
from runtime_worker._turns import TurnGate
from runtime_worker.profiles import Profile, ProfileRegistry
from runtime_worker.store.base import QueuedInput, RunAlone, Store
from runtime_worker.webhooks import Deliverer
from shared.errors import LeaseLost, RuntimeUnavailable, WorkerNotFound, YoiError
from shared.ids import new_id
from shared.settings import Settings
from shared.timeutil import now_s

log = logging.getLogger("yoi.host")

WAKE_RETRY_S = 0.5  # listen again this long after the store's wake-ups failed


class Host:
    def __init__(
        self,
        store: Store,
        *,
        runtime_id: str,
        member_id: str,
        profiles: ProfileRegistry,
        settings: Settings,
        provider_factory: ProviderFactory | None = None,
        lease_ttl_ms: int = 0,
        own_sweep: bool = True,
    ) -> None:
        self.store = store
        self.runtime_id = runtime_id
        self.member_id = member_id
        self.profiles = profiles
        self.settings = settings
        self.lease_ttl_ms = lease_ttl_ms
        # A fleet member sweeps from its placement sweep (it reads what a sweep needs anyway).
        self._own_sweep = own_sweep
        self._runner = TurnRunner(
            store, runtime_id=runtime_id, settings=settings, provider_factory=provider_factory
        )
        self._hosted: dict[str, Hosted] = {}
        self._loops: set[asyncio.Task[None]] = set()
        self._gate = TurnGate()
        self._running = False
        self.on_lost: Callable[[str], None] | None = None
        self.webhooks = Deliverer.for_settings(store, runtime_id, settings)
        self._runner.webhooks = self.webhooks

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def hosted_count(self) -> int:
        return len(self._hosted)

    def hosted(self) -> dict[str, int]:
        """Worker id → epoch of every lease held."""
        return {worker_id: h.epoch for worker_id, h in self._hosted.items()}

    def busy_ids(self) -> set[str]:
        """Workers with a drain in progress (a run, or inputs about to run)."""
        return {w for w, h in self._hosted.items() if h.drain is not None and not h.drain.done()}

    def busy(self) -> int:
        return len(self.busy_ids())

    async def start(self) -> None:
        if self._running:
            return
        self._running = True
        self._loops.add(asyncio.create_task(self._wake_loop(), name="yoi-wake-ups"))
        if self.webhooks is not None:
            self.webhooks.start()
        if self._own_sweep:
            self._loops.add(asyncio.create_task(self._sweep_loop(), name="yoi-sweep"))

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop taking work, let running turns finish for `grace_s`, then cancel them and give
        every lease back so another member takes over at once. Idempotent."""
        if not self._running:
            return
        self._running = False
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops.clear()
        grace = self.settings.drain_grace_s if grace_s is None else grace_s
        drains = [
            h.drain for h in self._hosted.values() if h.drain is not None and not h.drain.done()
        ]
        if drains:
            _, pending = await asyncio.wait(drains, timeout=grace)
            if pending:
                log.warning(
                    "stopping with %d runs unfinished after %.1fs: handing them back",
                    len(pending),
                    grace,
                )
        await self.drop_many(self.hosted(), release=True)
        await self._runner.aclose()
        if self.webhooks is not None:
            await self.webhooks.stop()

    # -- leases ----------------------------------------------------------------------------------

    async def adopt(self, worker_id: str, epoch: int | None = None) -> bool:
        """Host a Worker: take its lease (unless the caller did) and look for work."""
        if worker_id in self._hosted:
            return True
        if epoch is None:
            epoch = await self.store.acquire(worker_id, self.member_id, self.lease_ttl_ms)
            if epoch is None:
                return False
        # Registered before the next await, so a stop arriving meanwhile still releases it.
        hosted = self._hosted[worker_id] = Hosted(epoch=epoch)
        try:
            await self._load(worker_id, hosted)
        except YoiError:
            self._hosted.pop(worker_id, None)
            raise
        self.wake(worker_id)
        return True

    def host_acquired(
        self, worker_id: str, epoch: int, *, profile: str, display_name: str, busy: bool
    ) -> None:
        """Host a Worker whose lease the caller just took, with what the acquisition told about
        it: no read, and no task unless inputs wait (a later input rings this member, whose
        name is on the record since the acquisition). `InvalidInput` for a profile this member
        does not know, leaving the Worker unhosted."""
        if worker_id in self._hosted:
            return
        found = self.profiles.get(profile)
        self._hosted[worker_id] = Hosted(epoch=epoch, profile=found, display_name=display_name)
        if busy:
            self.wake(worker_id)

    def is_hosted(self, worker_id: str) -> bool:
        return worker_id in self._hosted

    async def _load(self, worker_id: str, hosted: Hosted) -> Profile:
        """The Worker's profile and name, read once per hosting."""
        if hosted.profile is None:
            record = await self.store.get_worker(worker_id)
            hosted.profile = self.profiles.get(record.profile)
            hosted.display_name = record.display_name
        return hosted.profile

    async def drop(self, worker_id: str, *, release: bool) -> None:
        """Stop hosting: cancel its drain (the input stays pending for the next host)."""
        hosted = self._hosted.pop(worker_id, None)
        if hosted is None:
            return
        if hosted.drain is not None:
            hosted.drain.cancel()
            # Wait without absorbing a cancellation aimed at the caller itself.
            await asyncio.wait([hosted.drain])
        if release:
            with contextlib.suppress(RuntimeUnavailable):
                await self.store.release_many({worker_id: hosted.epoch}, self.member_id)

    async def drop_many(self, leases: Mapping[str, int], *, release: bool) -> None:
        """`drop` for the Workers still hosted under these epochs: their drains cancelled
        together, their leases given back in one batch."""
        epochs: dict[str, int] = {}
        drains: list[asyncio.Task[None]] = []
        for worker_id, epoch in leases.items():
            hosted = self._hosted.get(worker_id)
            if hosted is None or hosted.epoch != epoch:
                continue  # not hosted, or taken again since
            del self._hosted[worker_id]
            epochs[worker_id] = epoch
            if hosted.drain is not None:
                hosted.drain.cancel()
                drains.append(hosted.drain)
        if drains:
            await asyncio.wait(drains)  # without absorbing a cancellation aimed at the caller
        if release and epochs:
            with contextlib.suppress(RuntimeUnavailable):
                await self.store.release_many(epochs, self.member_id)

    async def hand_back_idle(self, leases: Mapping[str, int]) -> list[str]:
        """Give back those of these Workers that are idle at this very moment (checked with
        the lease in one step, so no running answer is interrupted); busy ones stay, for a
        later sweep to move once their run ended. Answers the Workers given back."""
        mine = {w: e for w, e in leases.items() if self._hosted.get(w, NOT_HOSTED).epoch == e}
        released = await self.store.release_many(mine, self.member_id, idle_only=True)
        await self.drop_many({w: mine[w] for w in released}, release=False)
        return sorted(released)

    def wake(self, worker_id: str, ahead: QueuedInput | None = None) -> None:
        """Start draining the Worker's inputs unless a drain is already on it. `ahead`: the
        new input a hint carried (`WakeUp.ahead`), which the drain's next take may start ahead
        of its answer: the next to run unless a take (made from a sweep, say) got it first."""
        hosted = self._hosted.get(worker_id)
        if hosted is None or not self._running:
            return
        if ahead is not None and ahead.seq > hosted.seq:
            hosted.ahead = ahead
        if hosted.drain is None or hosted.drain.done():
            hosted.drain = asyncio.create_task(self._drain(worker_id, hosted), name="yoi-drain")
            hosted.drain.add_done_callback(functools.partial(drained, hosted))
        else:
            hosted.hinted = True

    async def poke(self, worker_id: str) -> None:
        """A hint arrived: new input (wake) or a cancel or stop (abort the running turn)."""
        hosted = self._hosted.get(worker_id)
        if hosted is None:
            return
        turn = hosted.turn
        if (
            turn is not None
            and not turn.done()
            and await self.store.is_cancelled(worker_id, hosted.seq)
        ):
            hosted.cancel_requested = True
            turn.cancel()
        self.wake(worker_id)

    # -- loops -----------------------------------------------------------------------------------

    async def _wake_loop(self) -> None:
        """The store's wake-ups for this member: new input starts a drain; a cancel, stop or
        interrupt may also end the running turn."""
        while True:
            try:
                async with contextlib.aclosing(self.store.wake_ups(self.member_id)) as wakes:
                    async for wake in wakes:
                        if wake.cancels:
                            await self._guarded(self.poke(wake.worker_id))
                        else:
                            self.wake(wake.worker_id, wake.ahead)
            except RuntimeUnavailable:
                pass
            except Exception:  # a bug in a store's wake-ups: said loudly, then listen again
                log.exception("wake-ups of member %s failed; listening again", self.member_id)
            await asyncio.sleep(WAKE_RETRY_S)

    async def _sweep_loop(self) -> None:
        """Correctness without hints: look at every hosted Worker now and then."""
        interval = self.settings.sweep_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            await self.sweep()

    async def sweep(self, waiting: Collection[str] | None = None) -> None:
        """Poke the hosted Workers with unfinished inputs (a lost doorbell hint: new input, or a
        cancel of the running one); one batched read finds them (or the caller, in `waiting`),
        idle ones cost no task."""
        if not self._hosted:
            return
        if waiting is None:
            try:
                waiting = await self.store.pending_work(list(self._hosted))
            except RuntimeUnavailable:
                # The member logs the outage once; the next sweep looks again.
                log.debug("sweep skipped: the store is unavailable")
                return
        for worker_id in [w for w in self._hosted if w in waiting]:
            await self._guarded(self.poke(worker_id))

    async def _guarded(self, step: Awaitable[None]) -> None:
        try:
            await step
        except LeaseLost:
            pass
        except (RuntimeUnavailable, WorkerNotFound) as exc:
            log.warning("hint not handled: %s", exc.message)

    # -- runs ------------------------------------------------------------------------------------

    async def _drain(self, worker_id: str, hosted: Hosted) -> None:
        try:
            while True:
                hosted.hinted = False  # hints from here on may be news the next step misses
                profile = await self._load(worker_id, hosted)
                ahead, hosted.ahead = hosted.ahead, None
                more = await self._take_and_run(worker_id, hosted, profile, ahead)
                if not (more or hosted.hinted):
                    return
        except LeaseLost:
            log.info("lease of worker %s lost: another member hosts it now", worker_id)
            self._hosted.pop(worker_id, None)
            if self.on_lost is not None:
                self.on_lost(worker_id)
        except RuntimeUnavailable:
            # The member logs the outage once; a line per Worker would flood the log.
            log.debug("worker %s paused: its store is unavailable", worker_id)

    async def _take_and_run(
        self, worker_id: str, hosted: Hosted, profile: Profile, ahead: QueuedInput | None
    ) -> bool:
        """Take the next input and run it, holding the turn gate from take to finish (alone
        for a suspect input); answers whether more may be waiting. With a hint's input
        (`ahead`), the run starts beside its take where the store can tell it
        (`Store.take_ahead`): a round trip sooner."""
        solo = False
        while True:
            async with self._gate.turn(solo=solo):
                run_id, ts, limit = new_id(), now_s(), profile.history_entries
                try:
                    early = None
                    if ahead is not None and not solo:
                        early = self.store.take_ahead(
                            worker_id, self.member_id, hosted.epoch, run_id, ts, limit, ahead
                        )
                    if early is not None:
                        return await self._runner.run_ahead(worker_id, hosted, profile, early)
                    taken = await self.store.take_run(
                        worker_id, self.member_id, hosted.epoch, run_id, ts, limit, solo=solo
                    )
                except RunAlone:
                    solo = True
                    continue
                return taken is not None and await self._runner.run(
                    worker_id, hosted, profile, taken
                )


__all__ = ["WAKE_RETRY_S", "Host", "ProviderFactory"]
