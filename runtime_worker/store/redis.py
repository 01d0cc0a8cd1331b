"""`RedisStore`: the fleet's store. Worker state lives in Redis; every step is one Lua script
over one Worker's keys (one hash tag), so it is atomic and Redis Cluster safe.

Key layout and entry formats: shared/keys.py and docs/redis-layout.md. Host-side writes are
fenced by the lease epoch inside their scripts; a refused write raises `LeaseLost` and writes
nothing. Redis being away surfaces as `RuntimeUnavailable` (see `_scripts.translate_errors`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from redis import exceptions as rex
from redis.asyncio import Redis

from runtime_worker.store import _redis_codec as codec
from runtime_worker.store._redis_blocking import SOCKET_TIMEOUT_S, block_read, doorbell, ring
from runtime_worker.store._redis_members import Members
from runtime_worker.store._redis_scope import ScopeClaims
from runtime_worker.store._scripts import Scripts, answer, check, translate_errors
from runtime_worker.store.base import (
    CancelOutcome,
    QueuedInput,
    RunClaim,
    RunOutcome,
    Store,
    Submission,
    WorkerRecord,
)
from runtime_worker.store.outcome import final_events, transcript_for
from shared.errors import CursorExpired, LeaseLost, WorkerNotFound
from shared.events import Event, RunStarted, StateChanged, UserMessage, dump_event
from shared.keys import INPUT_GROUP, Keys, WorkerKeys
from shared.models import (
    MemberInfo,
    ScopeEntry,
    Strategy,
    TranscriptEntry,
    TranscriptPage,
    TranscriptRole,
    WorkerState,
)
from shared.settings import Settings
from shared.timeutil import now_s

log = logging.getLogger("yoi.store.redis")

CONNECT_TIMEOUT_S = 2.0
APPROX_TRIM_FROM = 1000
DEDUPE_WINDOW = 1000  # input ids remembered per generation (two generations are kept)
COMPACT_MAX_ENTRIES = 100  # streams up to this length are rewritten compactly when idle


class RedisStore(Store):
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
        self._scopes = ScopeClaims(client, self.keys, self._scripts)
        # A member counts as alive while its heartbeats keep coming within a lease TTL.
        self._members = Members(
            client, self.keys, max(settings.lease_ttl_ms, 3 * settings.heartbeat_ms)
        )
        self._owns_client = owns_client
        self._closed = False

    @classmethod
    def from_url(
        cls, url: str, *, namespace: str, runtime_id: str, settings: Settings
    ) -> RedisStore:
        client = Redis.from_url(
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
        if self._owns_client and not self._closed:
            self._closed = True
            await self.client.aclose()

    # -- helpers ---------------------------------------------------------------------------------

    def _worker_keys(self, worker_id: str) -> WorkerKeys:
        try:
            return self.keys.worker(worker_id)
        except ValueError:
            raise WorkerNotFound(f"no worker {worker_id}") from None

    def _state_hole(self, worker_id: str) -> list[str]:
        """A state_changed event with a hole for the state, for scripts that change it."""
        event = StateChanged(worker_id=worker_id, ts=now_s(), state=WorkerState.IDLE)
        return list(codec.template(event, "state"))

    @property
    def _maxlen(self) -> str:
        """How scripts trim the event stream: approximately (whole nodes of ~100 entries) when
        the window is large enough for that to be noise, exactly when it is small."""
        maxlen = self.settings.events_maxlen
        return f"{'~' if maxlen >= APPROX_TRIM_FROM else '='} {maxlen}"

    # -- workers ---------------------------------------------------------------------------------

    @translate_errors
    async def create_worker(self, record: WorkerRecord) -> WorkerRecord:
        record = dataclasses.replace(record, state=WorkerState.PENDING)
        keys = self._worker_keys(record.worker_id)
        event = StateChanged(worker_id=record.worker_id, ts=now_s(), state=record.state)
        pairs = [part for item in codec.record_fields(record).items() for part in item]
        reply = await self._scripts.create(keys.all(), [self._maxlen, dump_event(event), *pairs])
        check(reply, record.worker_id)
        await answer(self.client.zadd(self.keys.workers(), {record.worker_id: record.created_at}))
        return dataclasses.replace(record)

    @translate_errors
    async def get_worker(self, worker_id: str) -> WorkerRecord:
        fields = await answer(self.client.hgetall(self._worker_keys(worker_id).record))
        if not fields:
            raise WorkerNotFound(f"no worker {worker_id}")
        return codec.record_from_fields(fields)

    @translate_errors
    async def list_workers(self) -> list[WorkerRecord]:
        worker_ids: list[str] = await answer(self.client.zrange(self.keys.workers(), 0, -1))
        async with self.client.pipeline(transaction=False) as pipe:
            for worker_id in worker_ids:
                pipe.hgetall(self.keys.record(worker_id))
            hashes: list[dict[str, str]] = await pipe.execute()
        gone = [wid for wid, fields in zip(worker_ids, hashes, strict=True) if not fields]
        if gone:  # retention expired their keys: drop them from the index lazily
            await answer(self.client.zrem(self.keys.workers(), *gone))
        return [codec.record_from_fields(fields) for fields in hashes if fields]

    @translate_errors
    async def request_stop(self, worker_id: str) -> WorkerRecord:
        keys = self._worker_keys(worker_id)
        args: list[Any] = [*self._state_hole(worker_id), self._maxlen, self.settings.retention_s]
        (flat,) = check(await self._scripts.stop(keys.all(), args), worker_id)
        return codec.record_from_fields(dict(zip(flat[::2], flat[1::2], strict=True)))

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
        self, worker_id: str, text: str, input_id: str, strategy: Strategy, ts: float
    ) -> Submission:
        keys = self._worker_keys(worker_id)
        event = UserMessage(worker_id=worker_id, ts=ts, input_id=input_id, text=text)
        args: list[Any] = [
            input_id,
            strategy.value,
            codec.input_entry_tail(input_id, text, ts),
            dump_event(event),
            self._maxlen,
            DEDUPE_WINDOW,
        ]
        seq, cursor, duplicate, host = check(
            await self._scripts.submit(keys.all(), args), worker_id
        )
        return Submission(input_id, cursor, int(seq), duplicate=bool(duplicate), host=host or None)

    @translate_errors
    async def cancel(self, worker_id: str) -> CancelOutcome:
        keys = self._worker_keys(worker_id)
        state, cancelled, host = check(await self._scripts.cancel(keys.all(), []), worker_id)
        return CancelOutcome(WorkerState(state), cancelled=bool(cancelled), host=host or None)

    # -- hints -----------------------------------------------------------------------------------

    async def ring(self, member_id: str, worker_id: str) -> None:
        """Only a hint: when it cannot be delivered the member's sweep finds the news."""
        try:
            await ring(self.client, self.keys.bell(member_id), worker_id)
        except (ValueError, rex.RedisError, OSError) as exc:
            log.warning("hint for member %s dropped (%s)", member_id, type(exc).__name__)

    @translate_errors
    async def doorbell(
        self, member_id: str, last_id: str, timeout_ms: int
    ) -> tuple[list[str], str]:
        return await doorbell(self.client, self.keys.bell(member_id), last_id, timeout_ms)

    # -- leases and host-side writes -------------------------------------------------------------

    @translate_errors
    async def acquire(self, worker_id: str, member_id: str, ttl_ms: int) -> int | None:
        keys = self._worker_keys(worker_id)
        args: list[Any] = [member_id, max(ttl_ms, 0), *self._state_hole(worker_id), self._maxlen]
        (epoch,) = check(await self._scripts.acquire(keys.all(), args), worker_id)
        return int(epoch) or None

    @translate_errors
    async def renew(self, member_id: str, leases: dict[str, int], ttl_ms: int) -> dict[str, bool]:
        """One round trip for all of a member's leases: a pipeline of compare-and-set scripts."""
        result = dict.fromkeys(leases, False)
        pairs = [(wid, keys) for wid in leases if (keys := _keys_or_none(self.keys, wid))]
        if not pairs:
            return result
        async with self.client.pipeline(transaction=False) as pipe:
            for worker_id, keys in pairs:
                await self._scripts.renew(
                    [keys.record, keys.lease],
                    [member_id, leases[worker_id], max(ttl_ms, 0)],
                    client=pipe,
                )
            replies = await pipe.execute()
        valid = [worker_id for worker_id, _ in pairs]
        result.update({wid: bool(ok) for wid, ok in zip(valid, replies, strict=True)})
        return result

    @translate_errors
    async def release(self, worker_id: str, member_id: str, epoch: int) -> None:
        keys = self._worker_keys(worker_id)
        await self._scripts.release([keys.record, keys.lease], [member_id, epoch])

    @translate_errors
    async def next_input(self, worker_id: str, member_id: str, epoch: int) -> QueuedInput | None:
        keys = self._worker_keys(worker_id)
        for _ in range(2):
            reply = await self._scripts.next_input(keys.all(), [member_id, epoch])
            if reply[0] == "no_group":
                await self._create_group(keys.inputs)
                continue
            found = check(reply, worker_id)
            return codec.parse_input(found[0], found[1]) if found else None
        raise RuntimeError(f"no consumer group on the inputs of worker {worker_id}")

    async def _create_group(self, key: str) -> None:
        try:
            await answer(self.client.xgroup_create(key, INPUT_GROUP, id="0", mkstream=True))
        except rex.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    @translate_errors
    async def begin_run(
        self, worker_id: str, epoch: int, item: QueuedInput, run_id: str, ts: float
    ) -> RunClaim | None:
        keys = self._worker_keys(worker_id)
        user = TranscriptEntry(
            role=TranscriptRole.USER,
            text=item.text,
            ts=item.ts,
            input_id=item.input_id,
            run_id=run_id,
        )
        started = RunStarted(
            worker_id=worker_id, ts=ts, run_id=run_id, input_id=item.input_id, attempt=1
        )
        args: list[Any] = [
            epoch,
            item.seq,
            item.entry_id,
            run_id,
            item.input_id,
            codec.transcript_json(user),
            *codec.template(started, "attempt"),
            *self._state_hole(worker_id),
            self._maxlen,
        ]
        reply = check(await self._scripts.begin_run(keys.all(), args), worker_id)
        if reply[0] == "done":
            return None
        _, attempt, cancelled, cursor = reply
        return RunClaim(run_id, int(attempt), bool(cancelled), cursor)

    @translate_errors
    async def append_events(self, worker_id: str, epoch: int, events: Sequence[Event]) -> str:
        keys = self._worker_keys(worker_id)
        args: list[Any] = [epoch, self._maxlen, *(dump_event(event) for event in events)]
        (cursor,) = check(await self._scripts.append(keys.all(), args), worker_id)
        return str(cursor)

    @translate_errors
    async def finish_run(
        self, worker_id: str, epoch: int, item: QueuedInput, outcome: RunOutcome, ts: float
    ) -> str:
        # The record gives the final events their run id; the script re-checks the epoch.
        record = await self.get_worker(worker_id)
        if record.epoch != epoch:
            raise LeaseLost(f"worker {worker_id} is at epoch {record.epoch}, not {epoch}")
        entry = transcript_for(record, item, outcome, ts)
        args: list[Any] = [
            epoch,
            item.seq,
            item.entry_id,
            codec.transcript_json(entry),
            outcome.input_tokens,
            outcome.output_tokens,
            outcome.result.value,
            outcome.error_code or "",
            *self._state_hole(worker_id),
            self._maxlen,
            self.settings.retention_s,
            COMPACT_MAX_ENTRIES,
            *(dump_event(event) for event in final_events(record, item, outcome, ts)),
        ]
        keys = self._worker_keys(worker_id)
        (cursor,) = check(await self._scripts.finish_run(keys.all(), args), worker_id)
        return str(cursor)

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
        args: list[Any] = ["", 0, 0]
        position = None
        if after is not None:
            position = codec.stream_id(after)
            args = [codec.format_id(position), position[0], position[1]]
        reply = await self._scripts.read_events(keys.all(), [*args, max(limit, 0)])
        entries, head, trimmed = check(reply, worker_id)
        if position is not None and trimmed:
            oldest = codec.just_before(head)
            if position < codec.stream_id(oldest):
                raise CursorExpired(
                    "the cursor is older than the retained events", oldest_cursor=oldest
                )
        return [codec.event_from_entry(entry_id, _field(raw, "e")) for entry_id, raw in entries]

    @translate_errors
    async def wait_events(
        self, worker_id: str, after: str, limit: int, timeout_ms: int
    ) -> list[Event]:
        events = await self.read_events(worker_id, after, limit)
        if events or timeout_ms <= 0:
            return events
        key = self._worker_keys(worker_id).events
        position = codec.format_id(codec.stream_id(after))
        if await block_read(self.client, key, position, 1, timeout_ms):
            # Read again through the script: it tells a cursor trimmed away meanwhile.
            return await self.read_events(worker_id, after, limit)
        return []

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
        upper = "+" if before is None else "(" + codec.format_id(codec.stream_id(before))
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
