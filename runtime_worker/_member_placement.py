"""`MemberPlacement`: which Workers a fleet member hosts, step by step.

Apart from the member's lifecycle because placement is the member's one algorithm with state
of its own (the alive members as last seen, when the next silent one counts as dead, the leases
of dead members to try again): heartbeats, lease renewal, placement sweeps and hints, and the
loop that times them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from runtime_worker._backoff import Backoff
from runtime_worker._member_base import MemberBase
from runtime_worker.placement import (
    HOSTABLE_STATES,
    Plan,
    alive_view,
    plan,
    preferred_first,
    target_for,
)
from runtime_worker.store._redis_members import MemberView
from shared.aio import cancel_and_wait
from shared.errors import RuntimeUnavailable, YoiError
from shared.models import MemberInfo
from shared.timeutil import monotonic_s

log = logging.getLogger("yoi.member")

ADOPT_BATCH = 500  # acquisitions per round trip (one pipeline) in a placement step
ADOPTS_IN_FLIGHT = 3  # such batches out at once: Python builds one while Redis runs another
DEATH_MARGIN_S = 0.005  # look at a silent member this long after it counts as dead
RETRY_MARGIN_S = 0.005  # try a dead member's lease again this long after it expires
SWEEP_DUTY = 10  # a periodic sweep waits at least this many times its own duration
FULL_EVERY = 10  # sweeps of the unhosted Workers per full sweep (the safety net)


class MemberPlacement(MemberBase):
    """The member's steps (the loops run these; tests call them directly)."""

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
        """Extend every lease held; drop the Workers whose lease is lost, and those whose lease
        went a whole TTL unrenewed. Each Worker's last renewal counts on its own: on a cluster
        a node that does not answer leaves its own Workers unrenewed (`store.renew` leaves them
        out), the others are renewed as usual, and a Worker taken since the last renewal counts
        from its acquisition."""
        leases = self.host.hosted()
        ttl_s = self.settings.lease_ttl_ms / 1000
        began = monotonic_s()  # a lease renewed in this round runs a TTL from here at least
        try:
            result = await self.store.renew(self.member_id, leases, self.settings.lease_ttl_ms)
        except RuntimeUnavailable:
            await self._give_up_lapsed(ttl_s, "leases expired while Redis was away")
            raise
        unanswered = [w for w in leases if w not in result]
        self._note_renewed(began, result, unanswered)
        lost = {w: e for w, e in leases.items() if result.get(w) is False}
        if lost:
            log.info("%d leases lost: other members host those workers now", len(lost))
            await self._drop(lost, release=False)
        if unanswered and not self._renew_partial:
            log.warning(
                "%d leases not renewed: their part of Redis did not answer; the others were",
                len(unanswered),
            )
        elif self._renew_partial and not unanswered:
            log.info("lease renewal complete again")
        self._renew_partial = bool(unanswered)
        if unanswered:
            await self._give_up_lapsed(ttl_s, "leases unrenewed for a whole TTL")

    def _note_renewed(self, began: float, result: dict[str, bool], unanswered: list[str]) -> None:
        """After a round that answered (in part, maybe): the Workers left unanswered keep their
        own last renewal (`_lease_from`), every other hosted one counts from `began`."""
        before = self._renewed_at
        for worker_id in unanswered:
            self._lease_from.setdefault(worker_id, before)
        if self._lease_from:  # renewed now, or gone: their own time no longer counts
            is_hosted = self.host.is_hosted
            self._lease_from = {
                w: at for w, at in self._lease_from.items() if not result.get(w) and is_hosted(w)
            }
        self._renewed_at = began

    async def _give_up_lapsed(self, ttl_s: float, why: str) -> None:
        """Drop (without release: nobody may host them until their leases expire in Redis too)
        the Workers whose lease was last renewed, or taken, over a TTL ago."""
        if not self.host.hosted_count:
            return
        now = monotonic_s()
        hosted = self.host.hosted()
        if now - self._renewed_at > ttl_s:
            since = self._lease_from
            lapsed = {
                w: e for w, e in hosted.items() if now - since.get(w, self._renewed_at) > ttl_s
            }
        else:
            lapsed = {
                w: hosted[w]
                for w, at in self._lease_from.items()
                if w in hosted and now - at > ttl_s
            }
        if not lapsed:
            return
        log.warning("%s: giving %d of %d workers up", why, len(lapsed), len(hosted))
        await self._drop(lapsed, release=False)
        for worker_id in lapsed:
            self._lease_from.pop(worker_id, None)

    async def place(self) -> int:
        """A full placement sweep over every Worker: drop ended Workers, take unhosted ones up
        to the fair share, hand idle ones back when above it, and put back in the unhosted set
        those it could not take (what an outage lost from it). Returns how many were taken."""
        if not self._taking:
            return 0
        began = monotonic_s()
        read = await self.store.placements()
        records = read.rows
        await self._refresh_members()
        hosted = self.host.hosted()
        members = alive_view(self._members, self.member_id, self.settings.capacity, len(hosted))
        live = sum(1 for r in records if r.state in HOSTABLE_STATES)
        if read.complete:
            step = plan(records, me=self.member_id, hosted=hosted, members=members)
            self._live = live
        else:
            # A cluster node did not answer: its Workers are missing, not gone. Take only;
            # dropping or handing back by their absence would release Workers still live.
            step = plan(
                records,
                me=self.member_id,
                hosted=hosted,
                members=members,
                live_count=max(self._live, live),
                idle=[],
            )
        self._sweep_host({r.worker_id for r in records if r.queue_depth and r.worker_id in hosted})
        del records, read  # thousands of rows: not kept while the Workers are taken
        self._sweep_cost_s = monotonic_s() - began
        await self._drop({w: hosted[w] for w in step.drop}, release=True)
        taken = await self._apply(step, hosted, members)
        await self.store.mark_unhosted([w for w in step.take if not self.host.is_hosted(w)])
        return taken

    async def place_unhosted(self) -> int:
        """A steady-state sweep: only the Workers that may need a host (`store.unhosted`), so
        its cost follows them, not the fleet's size. The live count is the members' hosted
        counts plus the unhosted ones; handing back to even out is left to full sweeps (the
        estimate lags other members' heartbeats). Returns how many Workers were taken."""
        if not self._taking:
            return 0
        began = monotonic_s()
        if self._unmarked:  # given up without a release: the next read must see them
            unmarked = list(self._unmarked)
            await self.store.mark_unhosted(unmarked)
            self._unmarked.difference_update(unmarked)
        records = (await self.store.unhosted()).rows
        await self._refresh_members()
        hosted = self.host.hosted()
        members = alive_view(self._members, self.member_id, self.settings.capacity, len(hosted))
        alive = {m.member_id for m in members}
        mine = [r.worker_id for r in records if r.host == self.member_id and r.worker_id in hosted]
        await self.store.settle_unhosted(mine)
        waiting = sum(
            1
            for r in records
            if r.worker_id not in hosted and r.host not in alive - {self.member_id}
        )
        # Only ever raised here: the heartbeats lag the members' acquisitions and the set is
        # read a page at a time, so this count errs low while Workers are being created (a
        # member whose share it cut would leave its hinted ones to later sweeps). Lowered by
        # the full sweeps, which count every Worker.
        self._live = max(self._live, sum(m.hosted for m in members) + waiting)
        self._sweep_cost_s = monotonic_s() - began
        step = plan(
            records,
            me=self.member_id,
            hosted=hosted,
            members=members,
            live_count=self._live,
            idle=[],
        )
        return await self._apply(step, hosted, members)

    async def _apply(self, step: Plan, hosted: dict[str, int], members: list[MemberInfo]) -> int:
        """A plan's moves after its drops; how many Workers were taken."""
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
        taken = await self._take_share(fresh)
        if taken:
            self._hinted_at = monotonic_s()
        return taken

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

    async def _take(self, candidates: Iterable[str], want: int) -> int:
        """Acquire up to `want` of `candidates` in order, a pipelined batch per round trip and
        up to `ADOPTS_IN_FLIGHT` batches at once: a member acquiring one batch after another
        waited on Redis for half its time. Each batch in flight reserves its size, so however
        many are out the member never tries more than `want` (its share stays exact); a
        batch's Workers it did not get free their places for the next ones. A batch that
        fails takes the others down with it: its Workers are still in the unhosted set (it is
        only settled after they are hosted), so a sweep reads them again."""
        pending = list(candidates)
        start = taken = reserved = 0
        batches: dict[asyncio.Future[int], int] = {}  # in flight → Workers reserved
        try:
            while True:
                while (
                    start < len(pending)
                    and taken + reserved < want
                    and len(batches) < ADOPTS_IN_FLIGHT
                    and self._taking
                ):
                    size = min(ADOPT_BATCH, want - taken - reserved)
                    batch = pending[start : start + size]
                    start += len(batch)
                    batches[asyncio.ensure_future(self._adopt(batch))] = len(batch)
                    reserved += len(batch)
                if not batches:
                    return taken
                done, _ = await asyncio.wait(batches, return_when=asyncio.FIRST_COMPLETED)
                for batch_done in done:
                    reserved -= batches.pop(batch_done)
                    taken += batch_done.result()  # an error ends the others (below)
        finally:
            await cancel_and_wait(*batches)

    async def _adopt(self, worker_ids: list[str]) -> int:
        ttl_ms = self.settings.lease_ttl_ms
        began = monotonic_s()  # a lease taken now runs a TTL from here at least
        answers = await self.store.acquire_many(worker_ids, self.member_id, ttl_ms)
        now = monotonic_s()
        taken = 0
        settled: list[str] = []
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
                settled.append(worker_id)
                self._lease_from[worker_id] = began  # not `_renewed_at`: maybe older
            elif got.holder is not None and got.holder not in self._alive and got.expires_ms:
                # A dead member's lease, not expired yet: try again the moment it is.
                self._retry.add(worker_id)
                due = now + got.expires_ms / 1000 + RETRY_MARGIN_S
                self._retry_at = due if self._retry_at is None else min(self._retry_at, due)
        if taken:
            self._hosted_changed.set()  # the registry hears of them before the next heartbeat
        await self.store.settle_unhosted(settled)  # hosted first: a stop may cancel this
        return taken

    async def _drop(self, leases: dict[str, int], *, release: bool) -> None:
        await self.host.drop_many(leases, release=release)  # those not re-taken meanwhile
        if not release:  # a lost lease: nobody may host it, and our name is on its record
            self._unmarked.update(leases)

    async def _placement_loop(self) -> None:
        """Hints as they come (blocking read), a sweep of the unhosted Workers every
        `sweep_interval_ms` and a full one every `FULL_EVERY` of those. A member that stops
        heartbeating is noticed the moment it counts as dead (a full sweep then takes its
        Workers), and a lease of it that outlived its heartbeat is tried again the moment it
        expires: takeover within the lease TTL, without sweeping more often. A full sweep
        reads every Worker: the next periodic one waits `SWEEP_DUTY` times as long as this one
        took, so at 100,000 Workers the safety net costs a bounded share of the member's time
        (a death, a lost lease or an outage still sweeps at once). A sweep is paced by what
        its read cost, not by the Workers it then took (that is the work it is there for). A
        periodic full sweep also waits while hints keep this member taking Workers, up to
        `FULL_EVERY` intervals more: at 100,000 Workers one holds the hints up for seconds."""
        backoff = Backoff("placement", log)
        interval_s = self.settings.sweep_interval_ms / 1000
        last_id: str | None = None
        next_sweep = next_full = latest_full = 0.0
        while True:
            try:
                if last_id is None:
                    last_id = await self.store.placement_cursor()
                if self._death_at is not None and monotonic_s() >= self._death_at:
                    await self._refresh_members()  # a death found here makes a sweep due
                now = monotonic_s()
                lull = now - self._hinted_at >= interval_s or now >= latest_full
                if self._sweep_due or (now >= next_full and lull):
                    self._sweep_due = False
                    await self.place()
                    paced = max(FULL_EVERY * interval_s, SWEEP_DUTY * self._sweep_cost_s)
                    next_full = monotonic_s() + paced
                    latest_full = next_full + FULL_EVERY * interval_s
                    next_sweep = monotonic_s() + interval_s
                elif now >= next_sweep:
                    await self.place_unhosted()
                    paced = max(interval_s, SWEEP_DUTY * self._sweep_cost_s)
                    next_sweep = monotonic_s() + paced
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
