"""The core of `RedisStore` (runtime_worker/store/redis.py): the client, keys and scripts, and
the steps the gateway makes (create, stop, scope claims, submit, cancel). Not a store of its own:
`RedisStore` adds the host side (`_redis_host.py`), the readers (`_redis_readers.py`) and the
fleet's roles.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Self

from redis import exceptions as rex
from redis.asyncio import Redis

from runtime_worker.store import _redis_codec as codec
from runtime_worker.store._redis_batch import (
    Arg,
    evalsha,
    packed,
    send_many,
)
from runtime_worker.store._redis_blocking import blocking_client
from runtime_worker.store._redis_client import Client, is_cluster, make_client
from runtime_worker.store._redis_conversations import Conversations
from runtime_worker.store._redis_members import Members
from runtime_worker.store._redis_pipeline import Pipeline
from runtime_worker.store._redis_placement import HINT_IDS, PLACEMENT_MAXLEN, PlacementHints
from runtime_worker.store._redis_schedules import Schedules
from runtime_worker.store._redis_scope import ScopeClaims
from runtime_worker.store._redis_transport import Routed, Transport
from runtime_worker.store._redis_wakeups import AHEAD_MAX_BYTES, INTERRUPT_SUFFIX, WakeUps
from runtime_worker.store._scripts import (
    Scripts,
    argv,
    check,
    translate_errors,
)
from runtime_worker.store.base import (
    CancelOutcome,
    RecordAt,
    Submission,
    WorkerRecord,
)
from runtime_worker.store.bounds import DEDUPE_WINDOW, text_digest
from runtime_worker.store.fleet import FleetStore
from shared.errors import WorkerNotFound
from shared.events import StateChanged, UserMessage, dump_stored
from shared.keys import Keys, WorkerKeys
from shared.models import (
    ScopeEntry,
    Strategy,
    WorkerState,
)
from shared.settings import Settings
from shared.timeutil import now_s

log = logging.getLogger("yoi.store.redis")

CONNECT_TIMEOUT_S = 2.0
APPROX_TRIM_FROM = 1000
SET_CHUNK = 1000  # members per SADD/SREM
TRIM = ("MAXLEN", "~", PLACEMENT_MAXLEN)  # how a placement hint trims the stream


class RedisCore(FleetStore):
    """See `RedisStore`: this part holds the connection and the gateway's steps."""

    def __init__(
        self,
        client: Client,
        *,
        namespace: str,
        runtime_id: str,
        settings: Settings,
        owns_client: bool = False,
    ) -> None:
        if not client.get_encoder().decode_responses:
            raise ValueError("RedisStore needs a client with decode_responses=True")
        self.client = client
        self.runtime_id = runtime_id
        self.settings = settings
        self.call_timeout_s = settings.redis_call_timeout_s  # every call's own deadline
        self.keys = Keys(namespace, runtime_id)
        self._scripts = Scripts.register(client)
        self._transport = Transport(client)  # batches, cut by node on a cluster
        self.cluster = self._transport.cluster
        self._pipeline = Pipeline(self._transport, self.call_timeout_s)  # hot scripts, batched
        # XREAD BLOCK that a cancellation always ends: its own client where the given one has a
        # socket timeout; a cluster client (made without one) reads itself.
        self._blocking = blocking_client(client) if isinstance(client, Redis) else client
        self._scopes = ScopeClaims(client, self.keys, self._scripts)
        # A member counts as alive while its heartbeats keep coming within a lease TTL.
        self._members = Members(
            client,
            self.keys,
            self._scripts,
            max(settings.lease_ttl_ms, 3 * settings.heartbeat_ms),
            settings.heartbeat_ms,
        )
        self._wakeups = WakeUps(
            client, self._blocking, self.keys, self._pipeline, self._scripts.ring
        )
        self._placement = PlacementHints(client, self.keys.placement())
        self._schedules = Schedules(client, self.keys)
        self._conversations = Conversations(self.keys, self._scripts)
        self._owns_client = owns_client
        self._closed = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str,
        runtime_id: str,
        settings: Settings,
        client_name: str | None = None,
    ) -> Self:
        cluster = is_cluster(url, settings.redis_cluster, CONNECT_TIMEOUT_S)
        client = make_client(
            url,
            cluster=cluster,
            decode_responses=True,
            # No socket timeout: every call has its own deadline (`translate_errors`). With one,
            # redis-py bounds each write by `asyncio.wait_for`, which on Python 3.11 swallows a
            # cancellation that lands as the write completes: the call then outlives its
            # deadline by the socket timeout.
            socket_timeout=None,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            health_check_interval=30,
            client_name=client_name,
        )
        return cls(
            client, namespace=namespace, runtime_id=runtime_id, settings=settings, owns_client=True
        )

    async def aclose(self) -> None:
        await self._pipeline.aclose()
        await self._transport.aclose()
        if not self._closed:
            self._closed = True
            if isinstance(self._blocking, Redis) and self._blocking is not self.client:
                await self._blocking.aclose(close_connection_pool=True)
            if self._owns_client:
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

    async def _set_many(self, op: str, key: str, members: Sequence[str]) -> None:
        """SADD or SREM many members of one set, a bounded command per thousand."""
        commands = [
            packed(op, key, *members[start : start + SET_CHUNK])
            for start in range(0, len(members), SET_CHUNK)
        ]
        for reply in await send_many(self._transport, commands) if commands else []:
            if isinstance(reply, Exception):
                raise reply

    @property
    def _maxlen(self) -> str:
        """How scripts trim the event stream: approximately (whole nodes of ~100 entries) when
        the window is large enough for that to be noise, exactly when it is small."""
        maxlen = self.settings.events_maxlen
        return f"{'~' if maxlen >= APPROX_TRIM_FROM else '='} {maxlen}"

    # -- workers ---------------------------------------------------------------------------------

    def _create_call(self, record: WorkerRecord, state_changed: str) -> tuple[list[str], list[Arg]]:
        """The create script's KEYS and ARGV for one record (in state `pending`), with its
        first event as stored (`dump_stored`, which leaves the worker id to the key)."""
        keys = self._worker_keys(record.worker_id).all()
        fields = codec.record_fields(record, with_id=False)  # the key says it
        pairs = [part for item in fields.items() for part in item]
        args = argv("create", pairs, events_maxlen=self._maxlen, state_changed=state_changed)
        return keys, args

    def _created_after(self, records: Sequence[WorkerRecord]) -> list[Routed]:
        """What follows the records of new Workers, once per batch: their index entries and
        unhosted marks (a bounded command per thousand) and their placement hints (one entry
        per `HINT_IDS`)."""
        after: list[Routed] = []
        for start in range(0, len(records), SET_CHUNK):
            part = records[start : start + SET_CHUNK]
            scored = [arg for r in part for arg in (repr(r.created_at), r.worker_id)]
            after.append(packed("ZADD", self.keys.workers(), "NX", *scored))
            after.append(packed("SADD", self.keys.unhosted(), *(r.worker_id for r in part)))
        if len(records) == 1:  # a lone create's hint, as members before batches read it
            hint = ("w", records[0].worker_id)
            after.append(packed("XADD", self.keys.placement(), *TRIM, "*", *hint))
            return after
        for start in range(0, len(records), HINT_IDS):
            ids = " ".join(r.worker_id for r in records[start : start + HINT_IDS])
            after.append(packed("XADD", self.keys.placement(), *TRIM, "*", "ws", ids))
        return after

    @translate_errors
    async def create(self, record: WorkerRecord) -> RecordAt:
        """One round trip (two on a cluster): the script writing the record and first event,
        then the index entry and the placement hint that has a member take the new Worker
        within milliseconds (a hint lost with Redis is left to the members' sweep)."""
        (created,) = await self._create_all([record])
        return created

    @translate_errors
    async def create_workers(self, records: Sequence[WorkerRecord]) -> list[RecordAt]:
        """`create` of many in one batch: every record's script pipelined (on a cluster cut by
        node and sent side by side), then the runtime-wide parts once: one ZADD and one SADD
        per thousand Workers, and their hints. Not atomic across Workers: a failure (Redis
        away) may leave some of them created (on one server a prefix, in order)."""
        return await self._create_all(records) if records else []

    async def _create_all(self, records: Sequence[WorkerRecord]) -> list[RecordAt]:
        pending = WorkerState.PENDING
        records = [
            r if r.state is pending else dataclasses.replace(r, state=pending) for r in records
        ]
        # The first event of each: stored without its worker id, so one text serves the batch
        # (its Workers are created in one step, at one time).
        event = dump_stored(StateChanged(worker_id=records[0].worker_id, ts=now_s(), state=pending))
        calls = [self._create_call(record, event) for record in records]
        script = self._scripts.create
        creates = [evalsha(script.sha, keys, args) for keys, args in calls]
        # Redis runs them in this order: an index entry never names a record not written yet
        # (`list_workers` drops index entries without a record).
        after = self._created_after(records)
        # A cluster runs a batch's parts side by side on their nodes, in no order: there the
        # records go first, or a sweep could drop an index entry whose record is not written
        # yet (`_unindex`) and lose the Worker from the index for good.
        first = creates if self.cluster else [*creates, *after]
        replies = await send_many(self._transport, first, replicated=True)
        head, rest = replies[: len(creates)], replies[len(creates) :]
        lost = [i for i, reply in enumerate(head) if isinstance(reply, rex.NoScriptError)]
        if lost:  # Redis lost its scripts: load, then those creates again
            script.sha = await self._transport.load(str(script.script))
            again = [evalsha(script.sha, *calls[i]) for i in lost]
            for index, reply in zip(lost, await send_many(self._transport, again), strict=True):
                head[index] = reply
        cursors = []
        for record, reply in zip(records, head, strict=True):
            if isinstance(reply, Exception):
                raise reply
            (cursor,) = check(reply, record.worker_id)
            cursors.append(str(cursor))
        # After lost scripts the index entries went in before their records: a listing
        # meanwhile may have dropped them (see `_unindex`), and the hints named Workers not
        # there yet. All again.
        if self.cluster or lost:
            rest = await send_many(self._transport, after)
        for other in rest:
            if isinstance(other, Exception):
                raise other
        return [RecordAt(record, cursor) for record, cursor in zip(records, cursors, strict=True)]

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
        record = codec.record_from_fields(dict(zip(flat[::2], flat[1::2], strict=True)), worker_id)
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

    @translate_errors
    async def bind_conversation(
        self, conversation: str, worker_id: str, *, replace: str | None, ttl_s: int
    ) -> str:
        return await self._conversations.bind(conversation, worker_id, replace, ttl_s)

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
        max_queued: int | None = None,
        trace: Mapping[str, str] | None = None,
    ) -> Submission:
        keys = self._worker_keys(worker_id)
        ts = round(ts, 3)  # whole milliseconds: take_run.lua re-encodes it exactly
        event = UserMessage(worker_id=worker_id, ts=ts, input_id=input_id, text=text)
        defaults: list[str] = []
        if strategy is None:  # the script resolves the profile's default: no read before it
            for profile, default in (default_strategies or {}).items():
                defaults += [profile, default.value]
        hint_prefix, hint_suffix = self._wakeups.channel_around(worker_id)
        args = argv(
            "submit",
            defaults,
            input_id=input_id,
            strategy="" if strategy is None else strategy.value,
            entry_tail=codec.input_entry_tail(input_id, text, ts, trace),
            user_message=dump_stored(event),
            events_maxlen=self._maxlen,
            dedupe_window=DEDUPE_WINDOW,
            hint_prefix=hint_prefix,
            hint_suffix=hint_suffix,
            worker_id=worker_id,
            digest=text_digest(text),
            interrupt_suffix=INTERRUPT_SUFFIX,
            ahead_max=AHEAD_MAX_BYTES,
            max_queued=max_queued or 0,
            publish=self._wakeups.publish,
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


def field_of(raw: list[str], name: str) -> str:
    """One field of a stream entry as a script returns it: a flat field/value list."""
    for index in range(0, len(raw) - 1, 2):
        if raw[index] == name:
            return raw[index + 1]
    raise ValueError(f"stream entry without field {name!r}")


def keys_or_none(keys: Keys, worker_id: str) -> WorkerKeys | None:
    try:
        return keys.worker(worker_id)
    except ValueError:
        return None
