"""Placement: which Workers one member should take or hand back, decided from a snapshot.

Pure functions, so the policy is tested without Redis. Every member plans on its own from the
same shared facts (the Worker records and the member registry); the lease is the only arbiter,
so two members planning to take the same Worker is harmless: one `acquire` wins.

The policy spreads Workers evenly: each member aims at the fair share of the live Workers,
water-filled over the alive members' capacities (200 Workers over three members of capacity
1000 → 67 each; over capacities 10 and 1000 → 10 and 190). A member above its share hands back
idle Workers only while another member has room, so a fleet that grows rebalances and a full
fleet does not churn.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from shared.models import MemberInfo, WorkerState

HOSTABLE_STATES = frozenset(
    {WorkerState.PENDING, WorkerState.IDLE, WorkerState.RUNNING, WorkerState.STOPPING}
)
"""States that need a host; `stopping` too, because a host drains what was queued."""


class Placed(Protocol):
    """What placement reads of a Worker: a `WorkerRecord`, or the few fields a sweep fetches."""

    @property
    def worker_id(self) -> str: ...
    @property
    def state(self) -> WorkerState: ...
    @property
    def host(self) -> str | None: ...
    @property
    def epoch(self) -> int: ...
    @property
    def queue_depth(self) -> int: ...
    @property
    def run_id(self) -> str | None: ...


def fair_share(live: int, capacities: Sequence[int]) -> int:
    """The smallest per-member cap `t` with `sum(min(c, t)) >= live` (all of it when short)."""
    if live <= 0 or not capacities:
        return 0
    caps = sorted(capacities)
    remaining = live
    for index, cap in enumerate(caps):
        share = math.ceil(remaining / (len(caps) - index))
        if cap >= share:
            return share
        remaining -= cap
    return caps[-1]


@dataclass(frozen=True)
class Plan:
    """One member's next moves. `take` is a shuffled list of candidates: take up to `want`.
    `disown` maps Workers recorded as this member's, whose lease it lost and which it will not
    take back (it is at its share), to their epoch: clearing their host lets others take them."""

    target: int
    drop: list[str] = field(default_factory=list)
    reclaim: list[str] = field(default_factory=list)
    disown: dict[str, int] = field(default_factory=dict)
    take: list[str] = field(default_factory=list)
    want: int = 0
    shed: list[str] = field(default_factory=list)


def alive_view(
    members: Sequence[MemberInfo], me: str, capacity: int, hosted: int
) -> list[MemberInfo]:
    """The alive members, this one always included with its own fresh numbers; a draining
    member counts for nothing (its Workers are handed back, so the others share them)."""
    view = [m for m in members if m.alive and not m.draining and m.member_id != me]
    view.append(MemberInfo(member_id=me, capacity=capacity, hosted=hosted, alive=True))
    return view


def target_for(live: int, members: Sequence[MemberInfo], me: str) -> int:
    share = fair_share(live, [m.capacity for m in members])
    mine = next((m.capacity for m in members if m.member_id == me), 0)
    return min(mine, share)


def plan(
    records: Sequence[Placed],
    *,
    me: str,
    hosted: Collection[str],
    members: Sequence[MemberInfo],
    rng: random.Random | None = None,
    live_count: int | None = None,
    idle: Sequence[str] | None = None,
) -> Plan:
    """Decide from a snapshot; `members` comes from `alive_view`. With `live_count` (how many
    Workers are live in the whole fleet) `records` is a partial view, the Workers that may
    need a host: a hosted Worker absent from it is not dropped, and `idle` names the hosted
    Workers that may be handed back."""
    rng = rng or random.Random()
    alive = {m.member_id for m in members}
    live = [r for r in records if r.state in HOSTABLE_STATES]
    live_ids = {r.worker_id for r in live}
    count = len(live) if live_count is None else live_count
    target = target_for(count, members, me)
    drop = [w for w in hosted if w not in live_ids] if live_count is None else []
    own: list[Placed] = []
    take: list[str] = []
    for record in live:
        if record.worker_id in hosted:
            continue
        if record.host == me:  # ours on record but not hosted: a lease we lost
            own.append(record)
        elif record.host is None or record.host not in alive:
            take.append(record.worker_id)
    rng.shuffle(take)  # members planning at once mostly try different Workers first
    holding = len(hosted) - len(drop)
    room_here = max(0, target - holding)
    reclaim = [r.worker_id for r in own[:room_here]]
    disown = {r.worker_id: r.epoch for r in own[room_here:]}
    holding += len(reclaim)
    want = max(0, target - holding)
    shed: list[str] = []
    if holding > target:
        share = fair_share(count, [m.capacity for m in members])
        room = sum(max(0, min(m.capacity, share) - m.hosted) for m in members if m.member_id != me)
        if idle is None:
            idle = [
                r.worker_id
                for r in live
                if r.worker_id in hosted
                and r.state is WorkerState.IDLE
                and r.queue_depth == 0
                and r.run_id is None
            ]
        shed = list(idle[: min(holding - target, room)])
    return Plan(
        target=target,
        drop=drop,
        reclaim=reclaim,
        disown=disown,
        take=take,
        want=want,
        shed=shed,
    )


def preferred_first(worker_ids: Sequence[str], me: str, members: Sequence[str]) -> list[str]:
    """The Workers rendezvous hashing gives to `me` among `members` first, then the rest: members
    taking the same hinted Workers at once mostly try different ones, so few acquisitions are
    wasted on a lease another member just took."""
    others = [m.encode() for m in members if m != me]
    if not others:
        return list(worker_ids)
    mine: list[str] = []
    rest: list[str] = []
    for worker_id in worker_ids:
        (mine if _prefers(me.encode(), worker_id, others) else rest).append(worker_id)
    return mine + rest


def prefers(me: str, worker_id: str, members: Sequence[str]) -> bool:
    """Whether rendezvous hashing gives the Worker to `me` among `members` (exactly one)."""
    return _prefers(me.encode(), worker_id, [m.encode() for m in members if m != me])


def _prefers(me: bytes, worker_id: str, others: Sequence[bytes]) -> bool:
    seed = zlib.crc32(worker_id.encode())
    mine = zlib.crc32(me, seed)
    return all((mine, me) > (zlib.crc32(other, seed), other) for other in others)
