"""`RedisStore`: the fleet's store. Worker state lives in Redis; every step is one Lua script
over one Worker's keys (one hash tag), so it is atomic and Redis Cluster safe.

Key layout and entry formats: shared/keys.py and docs/redis-layout.md. Host-side writes are
fenced by the lease epoch inside their scripts; a refused write raises `LeaseLost` and writes
nothing. Redis being away surfaces as `RuntimeUnavailable` (see `_scripts.translate_errors`).
This module holds the host side, the readers and the fleet's roles; the connection and the
gateway's steps are in `_redis_core.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from runtime_worker.store import _redis_codec as codec
from runtime_worker.store import _redis_runs as runs
from runtime_worker.store._redis_batch import (
    Acquisition,
    Call,
    evalsha_many,
    hmget_many,
    packed,
    parse_acquisition,
    send_many,
)
from runtime_worker.store._redis_blocking import block_read
from runtime_worker.store._redis_core import RedisCore, field_of, keys_or_none
from runtime_worker.store._redis_members import MemberView
from runtime_worker.store._redis_webhooks import RedisWebhooks
from runtime_worker.store._scripts import (
    answer,
    argv,
    check,
    translate_errors,
)
from runtime_worker.store.base import (
    QueuedInput,
    RunAlone,
    RunClaim,
    RunLogPage,
    RunOutcome,
    TakenRun,
)
from runtime_worker.store.cursor import check_window, format_cursor, parse_cursor
from runtime_worker.store.outcome import final_events, transcript_for
from shared.errors import WorkerNotFound
from shared.events import Event, dump_event
from shared.models import (
    MemberInfo,
    RunDetail,
    TranscriptPage,
)
from shared.settings import MIN_EVENTS_MAXLEN

RENEW_BATCH = 100  # leases per renew script call (~0.2 ms of Redis): others go between calls
COMPACT_MAX_ENTRIES = 100  # streams up to this length are rewritten compactly when idle
TRUSTED_PAGE = MIN_EVENTS_MAXLEN  # the fewest events trimming ever leaves: see `_follow`


class RedisStore(RedisWebhooks, RedisCore):
    """Give it a client (one server or a cluster) with `decode_responses=True` (as `from_url`
    makes); `aclose` closes the client only when the store made it."""

    # -- leases and host-side writes -------------------------------------------------------------

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
        return int(epoch) or None

    @translate_errors
    async def acquire_many(
        self, worker_ids: Sequence[str], member_id: str, ttl_ms: int
    ) -> dict[str, Acquisition]:
        """`acquire` for many Workers in one round trip. Each answer says what the new host needs
        (taken), or who holds the lease and for how long (not taken); a Worker that does not
        exist is left out."""
        calls: list[tuple[str, Call]] = []
        for worker_id in worker_ids:
            keys = keys_or_none(self.keys, worker_id)
            if keys is not None:
                args = self._acquire_args(worker_id, member_id, ttl_ms)
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

    def _acquire_args(self, worker_id: str, member_id: str, ttl_ms: int) -> list[Any]:
        return argv(
            "acquire",
            member=member_id,
            ttl_ms=max(ttl_ms, 0),
            events_maxlen=self._maxlen,
            **self._state_hole(worker_id),
        )

    @translate_errors
    async def renew(self, member_id: str, leases: dict[str, int], ttl_ms: int) -> dict[str, bool]:
        """One script call per `RENEW_BATCH` leases (per slot on a cluster), pipelined: a
        member's renewal costs Redis and Python a few microseconds per lease, not a call each."""
        result = dict.fromkeys(leases, False)
        groups: dict[int, list[tuple[str, int, str, str]]] = {}
        for worker_id, epoch in leases.items():
            keys = keys_or_none(self.keys, worker_id)
            if keys is not None:
                lease = (worker_id, epoch, keys.record, keys.lease)
                groups.setdefault(self._transport.slot(keys.record), []).append(lease)
        valid: list[str] = []
        calls: list[Call] = []
        head = argv("renew", member=member_id, ttl_ms=max(ttl_ms, 0))
        for group in groups.values():
            for start in range(0, len(group), RENEW_BATCH):
                part = group[start : start + RENEW_BATCH]
                pairs = [key for _, _, record, lease in part for key in (record, lease)]
                calls.append((pairs, [*head, *(epoch for _, epoch, _, _ in part)]))
                valid.extend(worker_id for worker_id, _, _, _ in part)
        if not calls:
            return result
        replies = await evalsha_many(self._transport, self._scripts.renew, calls)
        renewed = [ok for reply in replies for ok in reply]
        result.update({wid: bool(ok) for wid, ok in zip(valid, renewed, strict=True)})
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
        return {worker_id for worker_id, ok in zip(valid, replies, strict=True) if ok == 1}

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

    @translate_errors
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
        keys = self._worker_keys(worker_id)
        started, user = codec.take_templates(worker_id, run_id, ts)
        named: dict[str, Any] = {
            "member": member_id,
            "epoch": epoch,
            "run_id": run_id,
            "ts": repr(ts),
            "history": max(history, 0),
            "events_maxlen": self._maxlen,
            **self._state_hole(worker_id),
            **{f"started_{n}": part for n, part in enumerate(started, start=1)},
            **{f"user_{n}": part for n, part in enumerate(user, start=1)},
            "host_tag": self._members.host_tag(member_id),
            "judged": 0,
            "lost": "",
            "solo": int(solo),
            "max_crashes": self.settings.max_deliveries,
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
        entry_id, raw, attempt, cancelled, cursor, history_json, crashes, lost = found
        claim = RunClaim(run_id, int(attempt), bool(cancelled), cursor, int(crashes), lost == 1)
        return TakenRun(codec.parse_input(entry_id, raw), claim, codec.history(history_json))

    @translate_errors
    async def append_events(self, worker_id: str, epoch: int, events: Sequence[Event]) -> str:
        keys = self._worker_keys(worker_id)
        args = argv(
            "append",
            [dump_event(event) for event in events],
            epoch=epoch,
            events_maxlen=self._maxlen,
        )
        reply = await self._pipeline.run(self._scripts.append, keys.all(), args)
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
            [dump_event(event) for event in events],
            epoch=epoch,
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
        reply = await self._pipeline.run(self._scripts.finish_run, keys.all(), args)
        _, more = check(reply, worker_id)
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

    # -- readers ---------------------------------------------------------------------------------

    @translate_errors
    async def read_events(self, worker_id: str, after: str | None, limit: int) -> list[Event]:
        keys = self._worker_keys(worker_id)
        position = None if after is None else parse_cursor(after)
        start = "" if position is None else format_cursor(position)
        reply = await self._pipeline.run(
            self._scripts.read_events,
            keys.all(),
            argv("read_events", after=start, limit=max(limit, 0)),
        )
        entries, head, last, trimmed = check(reply, worker_id)
        if position is not None:
            newest = last or (entries[-1][0] if entries else "0")
            first = parse_cursor(head) if head else None
            check_window(position, first, parse_cursor(newest), bool(trimmed))
        return [codec.event_from_entry(entry_id, field_of(raw, "e")) for entry_id, raw in entries]

    @translate_errors
    async def tail_events(
        self, worker_id: str, after: str, limit: int, timeout_ms: int
    ) -> list[Event]:
        return await self._follow(worker_id, after, limit, timeout_ms)

    async def _follow(self, worker_id: str, after: str, limit: int, timeout_ms: int) -> list[Event]:
        """One blocking read after `after`; its entries are the answer when it cannot have
        skipped any: trimming leaves at least `events_maxlen` entries, never fewer than
        TRUSTED_PAGE, so a read after a trimmed-away cursor answers a full page. A full page, or
        nothing (the Worker may be gone), is read again through the script, which tells."""
        key = self._worker_keys(worker_id).events
        position = format_cursor(parse_cursor(after))
        entries = await block_read(self._blocking, key, position, TRUSTED_PAGE, timeout_ms)
        if 0 < len(entries) < TRUSTED_PAGE:
            return [codec.event_from_entry(entry_id, raw["e"]) for entry_id, raw in entries[:limit]]
        return await self.read_events(worker_id, after, limit)

    @translate_errors
    async def last_cursor(self, worker_id: str) -> str:
        keys = self._worker_keys(worker_id)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.exists(keys.record)
            pipe.xrevrange(keys.events, count=1)
            exists, newest = await pipe.execute()
        if not exists:
            raise WorkerNotFound(f"no worker {worker_id}")
        return str(newest[0][0]) if newest else "0"

    @translate_errors
    async def read_runs(self, worker_id: str, limit: int, before: str | None) -> RunLogPage:
        return await runs.read_runs(
            self.client, self._worker_keys(worker_id), worker_id, limit, before
        )

    @translate_errors
    async def find_run(self, worker_id: str, run_id: str) -> RunDetail | None:
        return await runs.find_run(self.client, self._worker_keys(worker_id), worker_id, run_id)

    @translate_errors
    async def read_transcript(
        self, worker_id: str, limit: int, before: str | None
    ) -> TranscriptPage:
        keys = self._worker_keys(worker_id)
        bound = None if before is None else parse_cursor(before)
        if bound == (0, 0):  # nothing is older than the first possible id
            if not await answer(self.client.exists(keys.record)):
                raise WorkerNotFound(f"no worker {worker_id}")
            return TranscriptPage(entries=[], next_before=None)
        upper = "+" if bound is None else "(" + format_cursor(bound)
        limit = max(limit, 0)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.exists(keys.record)
            pipe.xrevrange(keys.transcript, max=upper, min="-", count=limit + 1)
            exists, newest_first = await pipe.execute()
        if not exists:
            raise WorkerNotFound(f"no worker {worker_id}")
        more = len(newest_first) > limit
        page = newest_first[:limit][::-1]
        entries = [codec.parse_transcript(entry_id, fields["t"]) for entry_id, fields in page]
        return TranscriptPage(
            entries=entries, next_before=entries[0].cursor if more and entries else None
        )

    # -- members and health ----------------------------------------------------------------------

    @translate_errors
    async def heartbeat(self, member_id: str, capacity: int, hosted: int) -> None:
        """A member says it is alive, with its capacity and how many Workers it hosts."""
        await self._members.heartbeat(member_id, capacity, hosted)

    @translate_errors
    async def forget_member(self, member_id: str) -> None:
        """A member leaving gracefully."""
        await self._members.forget(member_id)

    @translate_errors
    async def drain_member(self, member_id: str) -> bool:
        return await self._members.drain(member_id)

    @translate_errors
    async def member_draining(self, member_id: str) -> bool:
        return await self._members.draining(member_id)

    @translate_errors
    async def members(self) -> list[MemberInfo]:
        return await self._members.list()

    @translate_errors
    async def member_views(self) -> list[MemberView]:
        """`members`, each with how long it has been silent (placement times deaths by it)."""
        return await self._members.views()

    @property
    def member_alive_ms(self) -> int:
        """How long a member counts as alive after its last heartbeat."""
        return self._members.alive_ms

    @translate_errors
    async def announce_placement(self, worker_ids: Sequence[str]) -> None:
        await self._placement.announce(worker_ids)

    @translate_errors
    async def placement_cursor(self) -> str:
        return await self._placement.newest()

    @translate_errors
    async def wait_placement(self, last_id: str, timeout_ms: int) -> tuple[list[str], str]:
        return await self._placement.wait(last_id, timeout_ms)

    @translate_errors
    async def put_schedule(self, schedule_id: str, entry_json: str) -> None:
        await self._schedules.put(schedule_id, entry_json)

    @translate_errors
    async def remove_schedule(self, schedule_id: str) -> bool:
        return await self._schedules.remove(schedule_id)

    @translate_errors
    async def schedules(self) -> tuple[dict[str, str], dict[str, str]]:
        return await self._schedules.all()

    @translate_errors
    async def mark_schedule(self, schedule_id: str, slot: int) -> None:
        await self._schedules.mark(schedule_id, slot)

    @translate_errors
    async def ping(self) -> None:
        await answer(self.client.ping())
