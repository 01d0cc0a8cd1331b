"""`RedisHostSide`: the `HostSide` role of `RedisStore`: a member's wake-ups, its leases (one
round trip per batch of Workers), and the writes of its runs (take, append, finish), each one
script fenced by the lease epoch (and an append or finish by its run: see `fence` in
`lua/_prelude.lua`).

Apart from the gateway's steps (`_redis_core.py`) and the readers (`_redis_readers.py`) so all a
host does to Redis is in one module.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis import exceptions as rex

from runtime_worker.store import _redis_codec as codec
from runtime_worker.store._redis_batch import (
    Acquisition,
    Call,
    PackedArgs,
    PackedKeys,
    evalsha_many,
    hmget_many,
    pack,
    pack_one,
    packed,
    parse_acquisition,
    send_many,
)
from runtime_worker.store._redis_core import RedisCore, keys_or_none
from runtime_worker.store._scripts import UNAVAILABLE_PREFIXES, argv, check, translate_errors
from runtime_worker.store.base import (
    QueuedInput,
    RunAlone,
    RunClaim,
    RunOutcome,
    TakenAhead,
    TakenRun,
    WakeUp,
)
from runtime_worker.store.outcome import final_events, transcript_for
from shared.errors import RuntimeUnavailable, WorkerNotFound
from shared.events import Event, dump_stored
from shared.models import TranscriptRole

log = logging.getLogger("yoi.store.redis")

RENEW_BATCH = 100  # leases per renew script call (~0.2 ms of Redis): others go between calls
RENEW_SEND = 5000  # leases per round trip of a renewal: the member's other steps run between
COMPACT_MAX_ENTRIES = 100  # streams up to this length are rewritten compactly when idle
RENEW_MIN_DEADLINE_S = 0.25  # a part's deadline is never below this, however short the TTL
HISTORY_COPY_BUDGET = 4_000_000  # the hosts' copies of recent history: text + ENTRY_COST each
ENTRY_COST = 100  # what one kept entry costs besides its text (the tuple, the list slot)


@dataclass
class _History:
    """A host's copy of one Worker's newest transcript entries, (role, text) oldest first, up
    to the id of the newest (see `known` in lua/take_run.lua), kept for one epoch and one
    history limit."""

    worker_id: str
    epoch: int
    limit: int
    newest: str
    entries: list[tuple[str, str]] = field(default_factory=list)
    cost: int = 0


class _HistoryCopies:
    """The copies of the Workers this process took runs of, most recently used last, at most
    `HISTORY_COPY_BUDGET` in all (the least recently used go first): a take of a Worker
    without a current copy reads its history afresh, as every take did before. A caller holds
    on to the copy it got: one evicted meanwhile is still whole, only no longer kept."""

    def __init__(self) -> None:
        self._copies: OrderedDict[str, _History] = OrderedDict()
        self._cost = 0

    def current(self, worker_id: str, epoch: int, limit: int | None = None) -> _History | None:
        """The copy made for this epoch (and this limit, when given), if any."""
        copy = self._copies.get(worker_id)
        if copy is None or copy.epoch != epoch or (limit is not None and copy.limit != limit):
            return None
        self._copies.move_to_end(worker_id)
        return copy

    def put(
        self, worker_id: str, epoch: int, limit: int, newest: str, entries: list[tuple[str, str]]
    ) -> None:
        """The copy is these entries, up to the entry id `newest`."""
        self.drop(worker_id)
        copy = _History(worker_id, epoch, limit, newest)
        self._copies[worker_id] = copy
        self._add(copy, entries)

    def extend(
        self, copy: _History, newest: str, entry: tuple[str, str] | None, bound: int
    ) -> list[tuple[str, str]]:
        """The copy with one more entry (none: its newest id moved only), the oldest beyond
        `bound` dropped; answers its entries."""
        copy.newest = newest
        self._add(copy, [entry] if entry is not None else [])
        excess = len(copy.entries) - bound
        if excess > 0:
            gone = sum(len(text) + ENTRY_COST for _, text in copy.entries[:excess])
            del copy.entries[:excess]
            self._charge(copy, -gone)
        return list(copy.entries)

    def drop(self, worker_id: str) -> None:
        copy = self._copies.pop(worker_id, None)
        if copy is not None:
            self._cost -= copy.cost

    def _add(self, copy: _History, entries: list[tuple[str, str]]) -> None:
        copy.entries.extend(entries)
        self._charge(copy, sum(len(text) + ENTRY_COST for _, text in entries))
        while self._cost > HISTORY_COPY_BUDGET and self._copies:
            _, oldest = self._copies.popitem(last=False)
            self._cost -= oldest.cost

    def _charge(self, copy: _History, cost: int) -> None:
        copy.cost += cost
        if self._copies.get(copy.worker_id) is copy:  # an evicted copy counts no more
            self._cost += cost


class RedisHostSide(RedisCore):
    """A part of `RedisStore` (see there)."""

    _history_copies: _HistoryCopies | None = None
    _renew_by_node = True  # until a cluster's server refuses renew_node's script flags

    @property
    def _histories(self) -> _HistoryCopies:
        if self._history_copies is None:
            self._history_copies = _HistoryCopies()
        return self._history_copies

    async def wake_ups(self, member_id: str) -> AsyncGenerator[WakeUp, None]:
        async for wake in self._wakeups.listen(member_id):
            yield wake

    @translate_errors
    async def acquire(self, worker_id: str, member_id: str, ttl_ms: int) -> int | None:
        keys = self._worker_keys(worker_id)
        args = self._acquire_args(worker_id, member_id, ttl_ms)
        # Replicated (a replica's WAIT on a cluster with replicas): a lease and epoch a failover
        # could lose would let two members host one Worker.
        (reply,) = await evalsha_many(
            self._transport, self._scripts.acquire, [(keys.all(), args)], replicated=True
        )
        epoch = check(reply, worker_id)[0]
        if int(epoch):
            await self._settle_unhosted([worker_id])
        return int(epoch) or None

    @translate_errors
    async def acquire_many(
        self, worker_ids: Sequence[str], member_id: str, ttl_ms: int
    ) -> dict[str, Acquisition]:
        """`acquire` for many Workers in one round trip. Each answer says what the new host needs
        (taken), or who holds the lease and for how long (not taken); a Worker that does not
        exist is left out."""
        calls: list[tuple[str, Call]] = []
        args: list[Any] | None = None
        for worker_id in worker_ids:
            keys = keys_or_none(self.keys, worker_id)
            if keys is not None:
                # The same for every Worker of the call: its event is stored without the
                # worker id (`dump_stored`), and they are taken at one time.
                args = args or self._acquire_args(worker_id, member_id, ttl_ms)
                calls.append((worker_id, (keys.all(), args)))
        replies = await evalsha_many(
            self._transport, self._scripts.acquire, [c for _, c in calls], replicated=True
        )
        answers: dict[str, Acquisition] = {}
        for (worker_id, _), reply in zip(calls, replies, strict=True):
            acquisition = parse_acquisition(reply)
            if acquisition is not None:
                answers[worker_id] = acquisition
        return answers

    async def _settle_unhosted(self, worker_ids: Sequence[str]) -> None:
        """These Workers have a host (this caller) now: sweeps need not read them. After the
        acquisition (and after the host has them: no await may come between those), so a
        Worker is never out of the set while it needs a host; a removal lost with Redis only
        leaves a candidate a sweep reads once more."""
        await self._set_many("SREM", self.keys.unhosted(), worker_ids)

    @translate_errors
    async def settle_unhosted(self, worker_ids: Sequence[str]) -> None:
        await self._settle_unhosted(worker_ids)

    @translate_errors
    async def mark_unhosted(self, worker_ids: Sequence[str]) -> None:
        await self._set_many("SADD", self.keys.unhosted(), worker_ids)

    def _acquire_args(self, worker_id: str, member_id: str, ttl_ms: int) -> list[Any]:
        return argv(
            "acquire",
            member=member_id,
            ttl_ms=max(ttl_ms, 0),
            events_maxlen=self._maxlen,
            **self._state_hole(worker_id),
        )

    async def renew(self, member_id: str, leases: dict[str, int], ttl_ms: int) -> dict[str, bool]:
        """One script call per `RENEW_BATCH` leases (per node on a cluster), pipelined, each
        lease key packed straight into RESP: a member's renewal costs Redis and Python about
        a microsecond per lease, not a call each. Sent `RENEW_SEND` leases at a time, each
        part with its own deadline: renewing 50,000 holds neither the member's event loop nor
        one deadline for all of them. The parts go side by side: on a busy member every await
        waits its turn in the event loop, so parts in a row would add those waits up (and let
        the last leases lapse). The holder is checked, not the epoch (see renew.lua).

        On a cluster the parts are cut by node too, and a node that does not answer fails its
        own part only: its Workers are left out of the answer (neither renewed nor known lost)
        and the other nodes' leases are renewed all the same, so one primary failing over
        lapses no lease of the others. A part waits at most half the TTL (`_renew_deadline_s`):
        a renewal held longer would hold back the next one of the nodes that did answer.
        `RuntimeUnavailable` only when no part answered."""
        result: dict[str, bool] = {}
        by_node: dict[str, list[tuple[str, str]]] = {}
        node_name = self._transport.node_name
        for worker_id in leases:
            lease = self.keys.lease_or_none(worker_id)
            if lease is None:
                result[worker_id] = False
            else:
                by_node.setdefault(node_name(lease), []).append((worker_id, lease))
        deadline_s = _renew_deadline_s(self.call_timeout_s, ttl_ms)
        parts = [
            self._renew_part(member_id, group[start : start + RENEW_SEND], ttl_ms, deadline_s)
            for group in by_node.values()
            for start in range(0, len(group), RENEW_SEND)
        ]
        unanswered: RuntimeUnavailable | None = None
        answers = await asyncio.gather(*parts, return_exceptions=True)
        for answered in answers:  # every part ended: none left unowned
            if isinstance(answered, RuntimeUnavailable):
                unanswered = answered
            elif isinstance(answered, BaseException):
                raise answered
            else:
                result |= answered
        if unanswered is not None and all(isinstance(a, BaseException) for a in answers):
            raise unanswered
        return result

    @translate_errors
    async def _renew_part(
        self, member_id: str, leases: list[tuple[str, str]], ttl_ms: int, deadline_s: float
    ) -> dict[str, bool]:
        """One node's leases (all of them on one server): on a cluster node, `RENEW_BATCH` of
        them per call of `renew_node` (renew.lua flagged) whatever their slots (a member's
        thousands of leases spread over most of the 16,384 slots: a call per slot was a call
        per lease or two); by slot with renew.lua where that is refused (a slot moved since the
        map was read) or not known (Redis before 7)."""
        async with asyncio.timeout(deadline_s):
            if self.cluster and self._renew_by_node:
                try:
                    return await self._renew_calls(member_id, [leases], ttl_ms, by_node=True)
                except rex.ResponseError as exc:
                    if str(exc).startswith(UNAVAILABLE_PREFIXES):
                        raise  # the node cannot take writes now: nor could it by slot
                    if "compiling" in str(exc):  # a server without script flags
                        self._renew_by_node = False
                        log.warning("renewals go by slot: this Redis has no script flags")
            groups: dict[int, list[tuple[str, str]]] = {}
            for worker_id, lease in leases:
                slot = self._transport.slot(lease) if self.cluster else 0
                groups.setdefault(slot, []).append((worker_id, lease))
            return await self._renew_calls(member_id, groups.values(), ttl_ms, by_node=False)

    async def _renew_calls(
        self,
        member_id: str,
        groups: Iterable[list[tuple[str, str]]],
        ttl_ms: int,
        *,
        by_node: bool,
    ) -> dict[str, bool]:
        """Each group's leases renewed `RENEW_BATCH` per call: renew.lua declares them all
        (one slot each group), `renew_node` the first only (one node each group)."""
        parts: list[list[str]] = []
        calls: list[Call] = []
        name = "renew_node" if by_node else "renew"
        script = self._scripts.renew_node if by_node else self._scripts.renew
        head = argv(name, member=member_id, ttl_ms=max(ttl_ms, 0))
        for group in groups:
            for start in range(0, len(group), RENEW_BATCH):
                part = group[start : start + RENEW_BATCH]
                if by_node:
                    first = PackedKeys(part[0][1], 1, pack_one(part[0][1]))
                    rest = b"".join(pack_one(lease) for _, lease in part[1:])
                    calls.append((first, PackedArgs(len(head) + len(part) - 1, pack(*head) + rest)))
                else:
                    data = b"".join(pack_one(lease) for _, lease in part)
                    calls.append((PackedKeys(part[0][1], len(part), data), head))
                parts.append([worker_id for worker_id, _ in part])
        replies = await evalsha_many(self._transport, script, calls)
        result: dict[str, bool] = {}
        for part_ids, lost in zip(parts, replies, strict=True):
            result.update(dict.fromkeys(part_ids, True))
            result.update({part_ids[int(i) - 1]: False for i in lost})
        return result

    @translate_errors
    async def release_many(
        self, leases: Mapping[str, int], member_id: str, *, idle_only: bool = False
    ) -> set[str]:
        calls: list[Call] = []
        valid: list[str] = []
        idle = int(idle_only)
        for worker_id, epoch in leases.items():
            keys = keys_or_none(self.keys, worker_id)
            if keys is not None:
                valid.append(worker_id)
                args = argv("release", member=member_id, epoch=epoch, idle_only=idle)
                calls.append(((keys.record, keys.lease), args))
        replies = await evalsha_many(self._transport, self._scripts.release, calls)
        released = {worker_id for worker_id, ok in zip(valid, replies, strict=True) if ok == 1}
        await self._set_many("SADD", self.keys.unhosted(), sorted(released))  # what sweeps read
        return released

    @translate_errors
    async def pending_work(self, worker_ids: Sequence[str]) -> set[str]:
        """Two fields of each record, pipelined: a sweep over thousands of idle Workers costs
        one round trip per thousand and starts nothing."""
        valid = [w for w in worker_ids if keys_or_none(self.keys, w) is not None]
        keys = [self.keys.record(worker_id) for worker_id in valid]
        rows = await hmget_many(self._transport, keys, ("next_seq", "done_seq"))
        return {
            worker_id
            for worker_id, (next_seq, done_seq) in zip(valid, rows, strict=True)
            if next_seq is None or int(next_seq) > int(done_seq or 0)
        }

    async def take_run(
        self,
        worker_id: str,
        member_id: str,
        epoch: int,
        run_id: str,
        ts: float,
        history: int,
        *,
        solo: bool = False,
    ) -> TakenRun | None:
        return await self._take(worker_id, member_id, epoch, run_id, ts, history, solo=solo)

    def take_ahead(
        self,
        worker_id: str,
        member_id: str,
        epoch: int,
        run_id: str,
        ts: float,
        history: int,
        item: QueuedInput,
    ) -> TakenAhead | None:
        limit = max(history, 0)
        copy = self._histories.current(worker_id, epoch, limit) if limit else None
        if limit and copy is None:
            return None  # the take reads the history afresh: nothing to start from
        entries: list[tuple[str, str]] = []
        if copy is not None:  # as `take_run` extends a current copy with the input's entry
            entries = [*copy.entries, (TranscriptRole.USER.value, item.text)][-limit:]
        guess = TakenRun(item, RunClaim(run_id, 1, False, ""), entries)
        # Started now, so its script leaves before any append of the run it may confirm.
        taken = asyncio.ensure_future(
            self._take(
                worker_id, member_id, epoch, run_id, ts, history, ahead=(item.seq, len(entries))
            )
        )
        return TakenAhead(guess, taken)

    @translate_errors
    async def _take(
        self,
        worker_id: str,
        member_id: str,
        epoch: int,
        run_id: str,
        ts: float,
        history: int,
        *,
        solo: bool = False,
        ahead: tuple[int, int] = (0, 0),
    ) -> TakenRun | None:
        """`take_run`; `ahead`: the seq and history length of the run its host started from a
        hint (see take_run.lua), (0, 0) for none."""
        keys = self._worker_keys(worker_id)
        started, user = codec.take_templates(run_id, ts)
        limit = max(history, 0)
        copies = self._histories
        copy = copies.current(worker_id, epoch, limit) if limit else None
        named: dict[str, Any] = {
            "member": member_id,
            "epoch": epoch,
            "run_id": run_id,
            "ts": repr(ts),
            "history": limit,
            "known": copy.newest if copy is not None else "",
            "events_maxlen": self._maxlen,
            **self._state_hole(worker_id),
            **{f"started_{n}": part for n, part in enumerate(started, start=1)},
            **{f"user_{n}": part for n, part in enumerate(user, start=1)},
            "host_tag": self._members.host_tag(member_id),
            "judged": 0,
            "lost": "",
            "solo": int(solo),
            "max_crashes": self.settings.max_deliveries,
            "ahead": ahead[0],
            "ahead_len": ahead[1],
        }
        args = argv("take_run", **named)
        found = check(await self._pipeline.run(self._scripts.take_run, keys.all(), args), worker_id)
        if found and found[0] == "judge":  # another member's attempt: was that host lost?
            lost = await self._members.lost(str(found[1]))
            args = argv("take_run", **{**named, "judged": 1, "lost": found[1] if lost else ""})
            found = check(await self._scripts.take_run(keys.all(), args), worker_id)
        if not found:
            return None
        if found[0] == "suspect":
            raise RunAlone(worker_id)
        entry_id, raw, attempt, cancelled, cursor, history_json, crashes, lost, newest, length = (
            found[:10]
        )
        claim = RunClaim(
            run_id,
            int(attempt),
            bool(cancelled),
            cursor,
            int(crashes),
            int(lost) > 0,
            ahead=found[10] == 1,
        )
        item = codec.parse_input(entry_id, raw)
        if not limit:
            return TakenRun(item, claim, codec.history(history_json))
        if history_json or copy is None:  # read afresh: the copy starts from it
            entries = codec.history(history_json)
            copies.put(worker_id, epoch, limit, newest, entries)
            return TakenRun(item, claim, entries)
        # The copy was current: this take added the input's own entry on its first attempt;
        # the transcript's length bounds it (a transcript shorter than the limit was trimmed).
        written = (TranscriptRole.USER.value, item.text) if claim.attempt == 1 else None
        entries = copies.extend(copy, newest, written, min(limit, int(length)))
        return TakenRun(item, claim, entries)

    @translate_errors
    async def append_events(
        self,
        worker_id: str,
        epoch: int,
        events: Sequence[Event],
        *,
        run_id: str,
        ahead: bool = False,
    ) -> str:
        keys = self._worker_keys(worker_id)
        args = argv(
            "append",
            [dump_stored(event) for event in events],
            epoch=epoch,
            run_id=run_id,
            events_maxlen=self._maxlen,
            ahead=int(ahead),
        )
        # A run started ahead writes beside its take (out, mostly): waiting for the take's
        # answer first would give back the round trip the start ahead saved.
        send = self._pipeline.run_beside if ahead else self._pipeline.run
        reply = await send(self._scripts.append, keys.all(), args)
        (cursor,) = check(reply, worker_id)
        return str(cursor)

    @translate_errors
    async def finish_run(
        self,
        worker_id: str,
        epoch: int,
        item: QueuedInput,
        outcome: RunOutcome,
        ts: float,
        *,
        run_id: str,
    ) -> bool:
        entry = transcript_for(run_id, item, outcome, ts)
        events = final_events(worker_id, run_id, item, outcome, ts)
        args = argv(
            "finish_run",
            [dump_stored(event) for event in events],
            epoch=epoch,
            run_id=run_id,
            seq=item.seq,
            entry_id=item.entry_id,
            finished_at=repr(ts),
            **{
                f"transcript_{n}": part
                for n, part in enumerate(codec.final_entry_template(entry), start=1)
            },
            input_tokens=outcome.input_tokens,
            output_tokens=outcome.output_tokens,
            result=outcome.result.value,
            error_code=outcome.error_code or "",
            events_maxlen=self._maxlen,
            retention_s=self.settings.retention_s,
            compact_max=COMPACT_MAX_ENTRIES,
            **self._state_hole(worker_id),
        )
        keys = self._worker_keys(worker_id)
        copies = self._histories
        copy = copies.current(worker_id, epoch)
        try:
            reply = await self._pipeline.run(self._scripts.finish_run, keys.all(), args)
            _, more, written = check(reply, worker_id)
        except BaseException:
            copies.drop(worker_id)  # whether the entry was written is not known
            raise
        if copy is not None:  # unbounded until the next take bounds it by limit and length
            copies.extend(copy, written, (entry.role.value, entry.text), len(copy.entries) + 1)
        return bool(more)

    @translate_errors
    async def is_cancelled(self, worker_id: str, seq: int) -> bool:
        # Through the batch path: on a cluster, one packed command to the record's node.
        (upto,) = await send_many(
            self._transport, [packed("HGET", self._worker_keys(worker_id).record, "cancel_upto")]
        )
        if isinstance(upto, Exception):
            raise upto
        if upto is None:
            raise WorkerNotFound(f"no worker {worker_id}")
        return seq <= int(upto)


def _renew_deadline_s(call_timeout_s: float, ttl_ms: int) -> float:
    """How long one part of a renewal waits: the call deadline, or half the TTL if shorter
    (never below `RENEW_MIN_DEADLINE_S`). The member renews every third of a TTL: a round
    held up to half of one by a node that does not answer still renews the leases of the
    nodes that do before they lapse."""
    if ttl_ms <= 0:  # no expiry
        return call_timeout_s
    return min(call_timeout_s, max(ttl_ms / 2000, RENEW_MIN_DEADLINE_S))
