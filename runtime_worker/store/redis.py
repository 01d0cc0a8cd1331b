"""`RedisStore`: the fleet's store. Worker state lives in Redis; every step is one Lua script
over one Worker's keys (one hash tag), so it is atomic and Redis Cluster safe.

Key layout and entry formats: shared/keys.py and docs/redis-layout.md. Host-side writes are
fenced by the lease epoch inside their scripts; a refused write raises `LeaseLost` and writes
nothing. Redis being away surfaces as `RuntimeUnavailable` (see `_scripts.translate_errors`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from redis import exceptions as rex
from redis.asyncio import Redis

from runtime_worker.store import _redis_codec as codec
from runtime_worker.store._redis_batch import (
    CHUNK,
    PLACEMENT_FIELDS,
    Acquisition,
    Call,
    Placement,
    evalsha,
    evalsha_many,
    hmget_many,
    packed,
    parse_acquisition,
    parse_placement,
    send_many,
)
from runtime_worker.store._redis_blocking import SOCKET_TIMEOUT_S, block_read
from runtime_worker.store._redis_client import make_client
from runtime_worker.store._redis_members import Members, MemberView
from runtime_worker.store._redis_pipeline import Pipeline
from runtime_worker.store._redis_placement import PLACEMENT_MAXLEN, PlacementHints
from runtime_worker.store._redis_schedules import Schedules
from runtime_worker.store._redis_scope import ScopeClaims
from runtime_worker.store._redis_wakeups import INTERRUPT_SUFFIX, WakeUps
from runtime_worker.store._scripts import (
    Scripts,
    answer,
    argv,
    check,
    translate_errors,
)
from runtime_worker.store.base import (
    CancelOutcome,
    Listed,
    QueuedInput,
    RecordAt,
    RunClaim,
    RunOutcome,
    Submission,
    TakenRun,
    WakeUp,
    WorkerRecord,
)
from runtime_worker.store.bounds import DEDUPE_WINDOW, text_digest
from runtime_worker.store.cursor import check_window, format_cursor, parse_cursor
from runtime_worker.store.fleet import FleetStore
from runtime_worker.store.outcome import final_events, transcript_for
from shared.errors import WorkerNotFound
from shared.events import Event, StateChanged, UserMessage, dump_event
from shared.keys import Keys, WorkerKeys
from shared.models import (
    MemberInfo,
    ScopeEntry,
    Strategy,
    TranscriptPage,
    WorkerState,
)
from shared.settings import MIN_EVENTS_MAXLEN, Settings
from shared.timeutil import now_s

log = logging.getLogger("yoi.store.redis")

CONNECT_TIMEOUT_S = 2.0
APPROX_TRIM_FROM = 1000
COMPACT_MAX_ENTRIES = 100  # streams up to this length are rewritten compactly when idle
LISTED_FIELDS = ("display_name", "profile", "state", "created_at")
_STATES = {state.value: state for state in WorkerState}
TRUSTED_PAGE = MIN_EVENTS_MAXLEN  # the fewest events trimming ever leaves: see `_follow`


class RedisStore(FleetStore):
    """Give it a client with `decode_responses=True` and socket timeouts (as `from_url` makes);
    `aclose` closes the client only when the store made it."""

    def __init__(
        self,
        client: Redis,
        *,
        namespace: str,
        runtime_id: str,
        settings: Settings,
        owns_client: bool = False,
    ) -> None:
        if not client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("RedisStore needs a client with decode_responses=True")
        self.client = client
        self.runtime_id = runtime_id
        self.settings = settings
        self.keys = Keys(namespace, runtime_id)
        self._scripts = Scripts.register(client)
        self._pipeline = Pipeline(client)  # the hot scripts, batched under load
        self._scopes = ScopeClaims(client, self.keys, self._scripts)
        # A member counts as alive while its heartbeats keep coming within a lease TTL.
        self._members = Members(
            client, self.keys, max(settings.lease_ttl_ms, 3 * settings.heartbeat_ms)
        )
        self._wakeups = WakeUps(client, self.keys)
        self._placement = PlacementHints(client, self.keys.placement())
        self._schedules = Schedules(client, self.keys)
        self._owns_client = owns_client
        self._closed = False

    @classmethod
    def from_url(
        cls, url: str, *, namespace: str, runtime_id: str, settings: Settings
    ) -> RedisStore:
        client = make_client(
            url,
            decode_responses=True,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            health_check_interval=30,
        )
        return cls(
            client, namespace=namespace, runtime_id=runtime_id, settings=settings, owns_client=True
        )

    async def aclose(self) -> None:
        await self._pipeline.aclose()
        if self._owns_client and not self._closed:
            self._closed = True
            await self.client.aclose()

    # -- helpers ---------------------------------------------------------------------------------

    def _worker_keys(self, worker_id: str) -> WorkerKeys:
        try:
            return self.keys.worker(worker_id)
        except ValueError:
            raise WorkerNotFound(f"no worker {worker_id}") from None

    def _state_hole(self, worker_id: str) -> dict[str, str]:
        """A state_changed event with a hole for the state, for scripts that change it."""
        event = StateChanged(worker_id=worker_id, ts=now_s(), state=WorkerState.IDLE)
        prefix, suffix = codec.template(event, "state")
        return {"state_prefix": prefix, "state_suffix": suffix}

    @property
    def _maxlen(self) -> str:
        """How scripts trim the event stream: approximately (whole nodes of ~100 entries) when
        the window is large enough for that to be noise, exactly when it is small."""
        maxlen = self.settings.events_maxlen
        return f"{'~' if maxlen >= APPROX_TRIM_FROM else '='} {maxlen}"

    # -- workers ---------------------------------------------------------------------------------

    @translate_errors
    async def create(self, record: WorkerRecord) -> RecordAt:
        """One round trip: the script writing the record and first event, then the index entry
        and the placement hint that has a member take the new Worker within milliseconds (a
        hint lost with Redis is left to the members' sweep)."""
        record = dataclasses.replace(record, state=WorkerState.PENDING)
        worker_id = record.worker_id
        keys = self._worker_keys(worker_id).all()
        event = StateChanged(worker_id=worker_id, ts=now_s(), state=record.state)
        pairs = [part for item in codec.record_fields(record).items() for part in item]
        args = argv("create", pairs, events_maxlen=self._maxlen, state_changed=dump_event(event))
        # Redis runs them in this order: the index entry never names a record not written yet
        # (`list_workers` drops index entries without a record).
        index = packed("ZADD", self.keys.workers(), "NX", repr(record.created_at), worker_id)
        hint = packed(
            "XADD", self.keys.placement(), "MAXLEN", "~", PLACEMENT_MAXLEN, "*", "w", worker_id
        )
        reply, *rest = await send_many(
            self.client, [evalsha(self._scripts.create.sha, keys, args), index, hint]
        )
        if isinstance(reply, rex.NoScriptError):  # Redis lost its scripts: load, then again
            reply = await self._scripts.create(keys, args)
            (cursor,) = check(reply, worker_id)
            # The index entry went in before the record: a listing meanwhile may have dropped
            # it (see `_unindex`), and the hint named a Worker not there yet. Both again.
            rest = await send_many(self.client, [index, hint])
        elif isinstance(reply, Exception):
            raise reply
        else:
            (cursor,) = check(reply, worker_id)
        for other in rest:
            if isinstance(other, Exception):
                raise other
        return RecordAt(dataclasses.replace(record), str(cursor))

    @translate_errors
    async def get_worker(self, worker_id: str) -> WorkerRecord:
        fields = await answer(self.client.hgetall(self._worker_keys(worker_id).record))
        if not fields:
            raise WorkerNotFound(f"no worker {worker_id}")
        return codec.record_from_fields(fields)

    @translate_errors
    async def get_worker_at(self, worker_id: str) -> RecordAt:
        keys = self._worker_keys(worker_id)
        newest_event = packed("XREVRANGE", keys.events, "+", "-", "COUNT", 1)
        flat, newest = await send_many(self.client, [packed("HGETALL", keys.record), newest_event])
        for reply in (flat, newest):
            if isinstance(reply, Exception):
                raise reply
        if not flat:
            raise WorkerNotFound(f"no worker {worker_id}")
        record = codec.record_from_fields(dict(zip(flat[::2], flat[1::2], strict=True)))
        return RecordAt(record, str(newest[0][0]) if newest else "0")

    @translate_errors
    async def list_workers(self) -> list[WorkerRecord]:
        worker_ids = await self._indexed()
        hashes: list[dict[str, str]] = []
        for start in range(0, len(worker_ids), CHUNK):
            async with self.client.pipeline(transaction=False) as pipe:
                for worker_id in worker_ids[start : start + CHUNK]:
                    pipe.hgetall(self.keys.record(worker_id))
                hashes.extend(await pipe.execute())
        await self._unindex([w for w, fields in zip(worker_ids, hashes, strict=True) if not fields])
        return [codec.record_from_fields(fields) for fields in hashes if fields]

    @translate_errors
    async def listing(self) -> list[Listed]:
        """Five fields of each record, not the whole hash: listing 10,000 Workers stays cheap."""
        worker_ids = await self._indexed()
        keys = [self.keys.record(worker_id) for worker_id in worker_ids]
        rows = await hmget_many(self.client, keys, LISTED_FIELDS)
        found: list[Listed] = []
        gone: list[str] = []
        for worker_id, (name, profile, state, created_at) in zip(worker_ids, rows, strict=True):
            if state is None:
                gone.append(worker_id)
            else:
                found.append(Listed(worker_id, name, profile, _STATES[state], float(created_at)))
        await self._unindex(gone)
        return found

    @translate_errors
    async def placements(self) -> list[Placement]:
        """What placement needs of every Worker (state, host, epoch, queue depth, run), read
        without the rest of the records: a member's sweep costs a few fields per Worker."""
        worker_ids = await self._indexed()
        keys = [self.keys.record(worker_id) for worker_id in worker_ids]
        rows = await hmget_many(self.client, keys, PLACEMENT_FIELDS)
        found: list[Placement] = []
        gone: list[str] = []
        for worker_id, row in zip(worker_ids, rows, strict=True):
            placement = parse_placement(worker_id, row)
            if placement is None:
                gone.append(worker_id)
            else:
                found.append(placement)
        await self._unindex(gone)
        return found

    async def _indexed(self) -> list[str]:
        worker_ids: list[str] = await answer(self.client.zrange(self.keys.workers(), 0, -1))
        return worker_ids

    async def _unindex(self, gone: list[str]) -> None:
        """Retention expired these Workers' keys: drop them from the index lazily. A Worker
        whose record appears now was being created (`create` retried after Redis lost its
        scripts indexes it before its record): it goes back, so none is lost from the index."""
        if not gone:
            return
        await answer(self.client.zrem(self.keys.workers(), *gone))
        keys = [self.keys.record(worker_id) for worker_id in gone]
        rows = await hmget_many(self.client, keys, ("created_at",))
        back = {w: float(row[0]) for w, row in zip(gone, rows, strict=True) if row[0] is not None}
        if back:
            await answer(self.client.zadd(self.keys.workers(), back))

    @translate_errors
    async def request_stop(self, worker_id: str) -> WorkerRecord:
        keys = self._worker_keys(worker_id)
        args = argv(
            "stop",
            **self._state_hole(worker_id),
            events_maxlen=self._maxlen,
            retention_s=self.settings.retention_s,
        )
        (flat,) = check(await self._scripts.stop(keys.all(), args), worker_id)
        record = codec.record_from_fields(dict(zip(flat[::2], flat[1::2], strict=True)))
        if record.host is not None:
            await self._wakeups.ring(record.host, worker_id)
        elif record.state is WorkerState.STOPPING:
            await self._placement.announce([worker_id])  # a host must drain it
        return record

    # -- scope allocation ------------------------------------------------------------------------

    @translate_errors
    async def claim_scope(
        self, worker_id: str, scope: Sequence[ScopeEntry], delegated_from: str | None
    ) -> None:
        await self._scopes.claim(worker_id, scope, delegated_from)

    @translate_errors
    async def release_scope(self, worker_id: str) -> None:
        await self._scopes.release(worker_id)

    # -- the input path --------------------------------------------------------------------------

    @translate_errors
    async def submit_input(
        self,
        worker_id: str,
        text: str,
        input_id: str,
        strategy: Strategy | None,
        ts: float,
        *,
        default_strategies: Mapping[str, Strategy] | None = None,
    ) -> Submission:
        keys = self._worker_keys(worker_id)
        ts = round(ts, 3)  # whole milliseconds: take_run.lua re-encodes it exactly
        event = UserMessage(worker_id=worker_id, ts=ts, input_id=input_id, text=text)
        defaults: list[str] = []
        if strategy is None:  # the script resolves the profile's default: no read before it
            for profile, default in (default_strategies or {}).items():
                defaults += [profile, default.value]
        bell_prefix, bell_suffix = self.keys.bell_around
        args = argv(
            "submit",
            defaults,
            input_id=input_id,
            strategy="" if strategy is None else strategy.value,
            entry_tail=codec.input_entry_tail(input_id, text, ts),
            user_message=dump_event(event),
            events_maxlen=self._maxlen,
            dedupe_window=DEDUPE_WINDOW,
            bell_prefix=bell_prefix,
            bell_suffix=bell_suffix,
            worker_id=worker_id,
            digest=text_digest(text),
            interrupt_suffix=INTERRUPT_SUFFIX,
        )
        seq, cursor, duplicate, host, *hinted = check(
            await self._pipeline.run(self._scripts.submit, keys.all(), args), worker_id
        )
        if host and not int(duplicate) and not (hinted and int(hinted[0])):
            await self._wakeups.ring(host, worker_id)  # nobody heard the pushed hint
        return Submission(input_id, cursor, int(seq), duplicate=bool(duplicate), host=host or None)

    @translate_errors
    async def cancel(self, worker_id: str) -> CancelOutcome:
        keys = self._worker_keys(worker_id)
        state, cancelled, host = check(await self._scripts.cancel(keys.all(), []), worker_id)
        if cancelled and host:
            await self._wakeups.ring(host, worker_id)
        return CancelOutcome(WorkerState(state), cancelled=bool(cancelled), host=host or None)

    # -- wake-ups --------------------------------------------------------------------------------

    async def wake_ups(self, member_id: str) -> AsyncGenerator[WakeUp, None]:
        async for wake in self._wakeups.listen(member_id):
            yield wake

    # -- leases and host-side writes -------------------------------------------------------------

    @translate_errors
    async def acquire(self, worker_id: str, member_id: str, ttl_ms: int) -> int | None:
        keys = self._worker_keys(worker_id)
        args = self._acquire_args(worker_id, member_id, ttl_ms)
        reply = await self._scripts.acquire(keys.all(), args)
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
            keys = _keys_or_none(self.keys, worker_id)
            if keys is not None:
                args = self._acquire_args(worker_id, member_id, ttl_ms)
                calls.append((worker_id, (keys.all(), args)))
        replies = await evalsha_many(self.client, self._scripts.acquire, [c for _, c in calls])
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
        """One round trip per thousand leases: a pipeline of compare-and-set scripts."""
        result = dict.fromkeys(leases, False)
        ttl = max(ttl_ms, 0)
        valid: list[str] = []
        calls: list[Call] = []
        for worker_id, epoch in leases.items():
            keys = _keys_or_none(self.keys, worker_id)
            if keys is not None:
                valid.append(worker_id)
                calls.append(
                    (
                        (keys.record, keys.lease),
                        argv("renew", member=member_id, epoch=epoch, ttl_ms=ttl),
                    )
                )
        if not calls:
            return result
        replies = await evalsha_many(self.client, self._scripts.renew, calls)
        result.update({wid: bool(ok) for wid, ok in zip(valid, replies, strict=True)})
        return result

    @translate_errors
    async def release_many(self, leases: Mapping[str, int], member_id: str) -> None:
        calls: list[Call] = []
        for worker_id, epoch in leases.items():
            keys = _keys_or_none(self.keys, worker_id)
            if keys is not None:
                calls.append(
                    ((keys.record, keys.lease), argv("release", member=member_id, epoch=epoch))
                )
        await evalsha_many(self.client, self._scripts.release, calls)

    @translate_errors
    async def pending_work(self, worker_ids: Sequence[str]) -> set[str]:
        """Two fields of each record, pipelined: a sweep over thousands of idle Workers costs
        one round trip per thousand and starts nothing."""
        valid = [w for w in worker_ids if _keys_or_none(self.keys, w) is not None]
        keys = [self.keys.record(worker_id) for worker_id in valid]
        rows = await hmget_many(self.client, keys, ("next_seq", "done_seq"))
        return {
            worker_id
            for worker_id, (next_seq, done_seq) in zip(valid, rows, strict=True)
            if next_seq is None or int(next_seq) > int(done_seq or 0)
        }

    @translate_errors
    async def take_run(
        self, worker_id: str, member_id: str, epoch: int, run_id: str, ts: float, history: int
    ) -> TakenRun | None:
        keys = self._worker_keys(worker_id)
        started, user = codec.take_templates(worker_id, run_id, ts)
        args = argv(
            "take_run",
            member=member_id,
            epoch=epoch,
            run_id=run_id,
            history=max(history, 0),
            events_maxlen=self._maxlen,
            **self._state_hole(worker_id),
            **{f"started_{n}": part for n, part in enumerate(started, start=1)},
            **{f"user_{n}": part for n, part in enumerate(user, start=1)},
        )
        reply = await self._pipeline.run(self._scripts.take_run, keys.all(), args)
        found = check(reply, worker_id)
        if not found:
            return None
        entry_id, raw, attempt, cancelled, cursor, history_json = found
        claim = RunClaim(run_id, int(attempt), bool(cancelled), cursor)
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
            transcript=codec.transcript_json(entry),
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
        upto = await answer(self.client.hget(self._worker_keys(worker_id).record, "cancel_upto"))
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
        return [codec.event_from_entry(entry_id, _field(raw, "e")) for entry_id, raw in entries]

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
        entries = await block_read(self.client, key, position, TRUSTED_PAGE, timeout_ms)
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


def _field(raw: list[str], name: str) -> str:
    """One field of a stream entry as a script returns it: a flat field/value list."""
    for index in range(0, len(raw) - 1, 2):
        if raw[index] == name:
            return raw[index + 1]
    raise ValueError(f"stream entry without field {name!r}")


def _keys_or_none(keys: Keys, worker_id: str) -> WorkerKeys | None:
    try:
        return keys.worker(worker_id)
    except ValueError:
        return None
