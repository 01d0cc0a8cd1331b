"""RedisStore beyond the Store contract: fencing, leases, trimming, retention, the key layout,
races over separate connections and Redis being away. Real Redis, and fakeredis where it can."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import fakeredis
import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.crc import key_slot

from runtime_worker.store import _redis_batch, _redis_core, _redis_pipeline, _redis_wakeups
from runtime_worker.store import _redis_codec as codec
from runtime_worker.store._redis_transport import Routed, Transport
from runtime_worker.store._scripts import (
    ScriptError,
    Scripts,
    answer,
    arg_names,
    argv,
    file_of,
    translate_errors,
)
from runtime_worker.store.base import (
    QueuedInput,
    RunOutcome,
    TakenRun,
    WakeUp,
    WorkerRecord,
)
from runtime_worker.store.redis import RedisStore
from shared.errors import CursorExpired, LeaseLost, RuntimeUnavailable, ScopeConflict, WorkerBusy
from shared.events import RunStarted, TextDelta, dump_event, dump_stored
from shared.ids import new_id
from shared.keys import SLOTS, Keys, slot_tag
from shared.models import (
    RunResult,
    ScopeEntry,
    ScopeMode,
    Strategy,
    TranscriptEntry,
    TranscriptRole,
    WorkerState,
)
from shared.settings import Settings
from shared.timeutil import now_s
from tests.helpers import free_port, wait_until

MEMBER = "m1"


@dataclass
class Backend:
    """Makes stores (each with its own client: separate connections) over one Redis."""

    kind: str
    namespace: str
    connect: Callable[[], Redis]
    stores: list[RedisStore]

    def store(self, settings: Settings | None = None, runtime_id: str = "fleet") -> RedisStore:
        store = RedisStore(
            self.connect(),
            namespace=self.namespace,
            runtime_id=runtime_id,
            settings=settings or Settings(),
            owns_client=True,
        )
        self.stores.append(store)
        return store


@contextlib.asynccontextmanager
async def _backend(kind: str, redis_url: str, namespace: str) -> AsyncIterator[Backend]:
    if kind == "redis":

        def connect() -> Redis:
            client: Redis = Redis.from_url(redis_url, decode_responses=True, socket_timeout=10)
            return client

    else:
        server = fakeredis.FakeServer()

        def connect() -> Redis:
            client: Redis = fakeredis.FakeAsyncRedis(server=server, decode_responses=True)
            return client

    made = Backend(kind, namespace, connect, [])
    try:
        yield made
    finally:
        if made.stores:  # never flush: delete this namespace's keys only
            client = made.stores[0].client
            keys = [key async for key in client.scan_iter(match="{" + namespace + ":*")]
            if keys:
                await client.delete(*keys)
        for store in made.stores:
            await store.aclose()


@pytest.fixture(params=["redis", "fakeredis"])
async def backend(
    request: pytest.FixtureRequest, redis_url: str, namespace: str
) -> AsyncIterator[Backend]:
    async with _backend(request.param, redis_url, namespace) as made:
        yield made


@pytest.fixture(params=["redis", "fakeredis"])
async def flushable(
    request: pytest.FixtureRequest, private_redis_url: str, namespace: str
) -> AsyncIterator[Backend]:
    """Like `backend`, but a real Redis this suite started itself: tests here may flush it."""
    async with _backend(request.param, private_redis_url, namespace) as made:
        yield made


@pytest.fixture
async def real_redis(redis_url: str, namespace: str) -> AsyncIterator[Backend]:
    """For what fakeredis cannot tell: memory usage."""
    async with _backend("redis", redis_url, namespace) as made:
        yield made


async def _worker(store: RedisStore, **fields: object) -> WorkerRecord:
    record = WorkerRecord(
        worker_id=new_id(),
        display_name="w",
        profile="assistant",
        created_at=now_s(),
        **fields,  # type: ignore[arg-type]
    )
    return (await store.create(record)).record


async def _hosted(store: RedisStore, member: str = MEMBER) -> tuple[WorkerRecord, int]:
    record = await _worker(store)
    epoch = await store.acquire(record.worker_id, member, 60_000)
    assert epoch is not None
    return record, epoch


async def _take(store: RedisStore, worker_id: str, epoch: int, member: str = MEMBER) -> TakenRun:
    taken = await store.take_run(worker_id, member, epoch, new_id(), now_s(), 0)
    assert taken is not None
    return taken


async def _finish(
    store: RedisStore, worker_id: str, epoch: int, taken: TakenRun, outcome: RunOutcome
) -> bool:
    run_id = taken.claim.run_id
    return await store.finish_run(worker_id, epoch, taken.item, outcome, now_s(), run_id=run_id)


async def _exchange(
    store: RedisStore, worker_id: str, epoch: int, deltas: int = 5
) -> tuple[QueuedInput, bool]:
    sub = await store.submit_input(worker_id, "hello there", new_id(), Strategy.REJECT, now_s())
    taken = await _take(store, worker_id, epoch)
    item, claim = taken.item, taken.claim
    assert item.seq == sub.seq
    for n in range(deltas):
        delta = TextDelta(
            worker_id=worker_id,
            ts=now_s(),
            run_id=claim.run_id,
            input_id=item.input_id,
            text=f"word{n} ",
        )
        await store.append_events(worker_id, epoch, [delta], run_id=claim.run_id)
    text = "".join(f"word{n} " for n in range(deltas))
    outcome = RunOutcome(RunResult.FINISHED, text, 12, deltas)
    return item, await _finish(store, worker_id, epoch, taken, outcome)


async def _lengths(store: RedisStore, worker_id: str) -> dict[str, int]:
    keys = store.keys.worker(worker_id)
    client = store.client
    groups = await client.xinfo_groups(keys.inputs) if await client.exists(keys.inputs) else []
    return {
        "events": await client.xlen(keys.events),
        "transcript": await client.xlen(keys.transcript),
        "inputs": await client.xlen(keys.inputs),
        "pending": sum(group["pending"] for group in groups),
    }


# -- fencing and leases ------------------------------------------------------------------------


async def test_stale_epoch_writes_raise_lease_lost_and_write_nothing(backend: Backend) -> None:
    store = backend.store()
    record, old = await _hosted(store)
    wid = record.worker_id
    await store.submit_input(wid, "q", new_id(), Strategy.ENQUEUE, now_s())
    taken = await _take(store, wid, old)
    # The lease expires (simulated) and another member takes over.
    await store.client.delete(store.keys.lease(wid))
    new = await store.acquire(wid, "m2", 60_000)
    assert new == old + 1
    before = await _lengths(store, wid)
    record_before = await store.get_worker(wid)

    delta = TextDelta(worker_id=wid, ts=now_s(), text="stale")
    with pytest.raises(LeaseLost):
        await store.append_events(wid, old, [delta], run_id=taken.claim.run_id)
    with pytest.raises(LeaseLost):
        await _finish(store, wid, old, taken, RunOutcome(RunResult.FINISHED, "x"))
    with pytest.raises(LeaseLost):
        await store.take_run(wid, MEMBER, old, new_id(), now_s(), 0)
    await store.release_many({wid: old}, MEMBER)  # not ours any more: a no-op
    assert await store.renew(MEMBER, {wid: old}, 60_000) == {wid: False}

    assert await _lengths(store, wid) == before
    after = await store.get_worker(wid)
    assert (after.host, after.epoch, after.done_seq) == ("m2", new, record_before.done_seq)
    assert await store.client.get(store.keys.lease(wid)) == "m2"


async def test_a_failover_that_lost_an_acquisition_reuses_its_epoch_but_not_its_run(
    real_redis: Backend, redis_url: str
) -> None:
    """What the run fence adds to the epoch: a failover that loses an acquisition (and the run
    taken under it) rolls the Worker back to what the promoted replica had, where the next
    acquisition gets the very same epoch. The member whose writes were lost still holds that
    epoch, and its run's appends and finish would pass an epoch check; its run id is not the
    Worker's, so they are refused. Simulated with DUMP/RESTORE of the Worker's keys."""
    store = real_redis.store()
    raw = Redis.from_url(redis_url)  # DUMP payloads are bytes
    record, first = await _hosted(store)
    wid = record.worker_id
    keys = store.keys.worker(wid).all()
    await store.submit_input(wid, "q", new_id(), Strategy.ENQUEUE, now_s())
    await _take(store, wid, first)
    await store.client.delete(store.keys.lease(wid))  # m1's lease lapsed in the outage
    replica = [(key, await raw.dump(key), await raw.pttl(key)) for key in keys]
    lost_epoch = await store.acquire(wid, "m2", 60_000)
    assert lost_epoch == first + 1
    # m1 never heartbeated: judged lost, its input is a suspect and runs alone.
    lost_run = await store.take_run(wid, "m2", lost_epoch, new_id(), now_s(), 0, solo=True)
    assert lost_run is not None
    for key, dumped, ttl in replica:  # the promotion: m2's writes are gone
        if dumped is None:
            await raw.delete(key)
        else:
            await raw.restore(key, max(ttl, 0), dumped, replace=True)
    epoch = await store.acquire(wid, "m3", 60_000)
    assert epoch == lost_epoch  # the same number, handed out again
    current = await store.take_run(wid, "m3", epoch, new_id(), now_s(), 0, solo=True)
    assert current is not None
    before = await _lengths(store, wid)

    delta = TextDelta(
        worker_id=wid, ts=now_s(), run_id=lost_run.claim.run_id, text="late", input_id="x"
    )
    with pytest.raises(LeaseLost):
        await store.append_events(wid, lost_epoch, [delta], run_id=lost_run.claim.run_id)
    with pytest.raises(LeaseLost):
        await _finish(store, wid, lost_epoch, lost_run, RunOutcome(RunResult.FINISHED, "late"))
    with pytest.raises(LeaseLost):  # and m2 cannot start another: the lease is m3's
        await store.take_run(wid, "m2", lost_epoch, new_id(), now_s(), 0)
    assert await _lengths(store, wid) == before
    after = await store.get_worker(wid)
    assert (after.run_id, after.done_seq) == (current.claim.run_id, 0)
    await _finish(store, wid, epoch, current, RunOutcome(RunResult.FINISHED, "answer"))
    await raw.aclose()


async def test_right_epoch_but_foreign_lease_is_refused(backend: Backend) -> None:
    """The lease key names its holder: a member that is not it cannot read inputs."""
    store = backend.store()
    record, epoch = await _hosted(store)
    await store.submit_input(record.worker_id, "q", new_id(), Strategy.ENQUEUE, now_s())
    with pytest.raises(LeaseLost):
        await store.take_run(record.worker_id, "intruder", epoch, new_id(), now_s(), 0)


async def test_lease_acquire_renew_expire_release(backend: Backend) -> None:
    store = backend.store()
    record = await _worker(store)
    wid, lease = record.worker_id, store.keys.lease(record.worker_id)
    epoch = await store.acquire(wid, MEMBER, 300)
    assert epoch == 1
    assert await store.client.get(lease) == MEMBER
    assert 0 < await store.client.pttl(lease) <= 300
    assert await store.acquire(wid, "m2", 300) is None

    assert await store.renew(MEMBER, {wid: epoch}, 60_000) == {wid: True}
    assert await store.client.pttl(lease) > 1000
    assert await store.renew("m2", {wid: epoch}, 60_000) == {wid: False}

    await store.renew(MEMBER, {wid: epoch}, 50)  # let it lapse: the next member takes over
    taken: list[int] = []

    async def taken_over() -> bool:
        got = await store.acquire(wid, "m2", 60_000)
        if got is not None:
            taken.append(got)
        return bool(taken)

    await wait_until(taken_over, timeout_s=5, what="the lapsed lease to be taken")
    assert taken == [2]
    assert await store.renew(MEMBER, {wid: epoch}, 60_000) == {wid: False}

    await store.release_many({wid: 2}, "m2")
    assert await store.client.exists(lease) == 0
    got = await store.get_worker(wid)
    assert got.host is None and got.epoch == 2
    assert await store.acquire(wid, MEMBER, 0) == 3  # ttl 0: no expiry (embedded use)
    assert await store.client.pttl(lease) == -1


async def test_renew_many_leases_in_one_call(backend: Backend) -> None:
    store = backend.store()
    leases = {}
    for _ in range(200):
        record, epoch = await _hosted(store)
        leases[record.worker_id] = epoch
    lost = next(iter(leases))
    await store.client.set(store.keys.lease(lost), "someone-else")
    leases["not a worker id"] = 1
    result = await store.renew(MEMBER, leases, 60_000)
    assert result.pop(lost) is False and result.pop("not a worker id") is False
    assert all(result.values()) and len(result) == 199


async def test_acquire_refuses_ended_workers_but_takes_stopping_ones(backend: Backend) -> None:
    store = backend.store()
    record, epoch = await _hosted(store)
    await store.submit_input(record.worker_id, "q", new_id(), Strategy.ENQUEUE, now_s())
    assert (await store.request_stop(record.worker_id)).state is WorkerState.STOPPING
    await store.release_many({record.worker_id: epoch}, MEMBER)
    again = await store.acquire(record.worker_id, "m2", 60_000)
    assert again == epoch + 1  # a stopping worker needs a host to drain it
    stopped = await _worker(store)
    await store.request_stop(stopped.worker_id)
    assert await store.acquire(stopped.worker_id, MEMBER, 60_000) is None


async def test_a_dead_hosts_pending_input_is_claimed_by_the_next(backend: Backend) -> None:
    store = backend.store()
    record, epoch = await _hosted(store)
    wid = record.worker_id
    await store.submit_input(wid, "q", new_id(), Strategy.ENQUEUE, now_s())
    item = (await _take(store, wid, epoch)).item
    await store.client.delete(store.keys.lease(wid))  # m1 died: its lease lapsed
    epoch2 = await store.acquire(wid, "m2", 60_000)
    assert epoch2 is not None
    # m1 never heartbeat: lost, with turns unknown; a first loss runs again beside others
    again = await store.take_run(wid, "m2", epoch2, new_id(), now_s(), 0)
    assert again is not None
    assert again.item.entry_id == item.entry_id and again.claim.attempt == 2
    assert again.claim.host_lost
    pending = await store.client.xpending_range(store.keys.inputs(wid), "hosts", "-", "+", 10)
    assert [p["consumer"] for p in pending] == ["m2"]


# -- the input path ----------------------------------------------------------------------------


async def test_fifty_concurrent_rejects_over_separate_connections(backend: Backend) -> None:
    stores = [backend.store() for _ in range(50)]
    record, _ = await _hosted(stores[0])
    results = await asyncio.gather(
        *(
            s.submit_input(record.worker_id, "hi", new_id(), Strategy.REJECT, now_s())
            for s in stores
        ),
        return_exceptions=True,
    )
    accepted = [r for r in results if not isinstance(r, BaseException)]
    assert len(accepted) == 1
    assert all(isinstance(r, WorkerBusy) for r in results if isinstance(r, BaseException))
    lengths = await _lengths(stores[0], record.worker_id)
    assert lengths["inputs"] == 1
    assert (await stores[0].get_worker(record.worker_id)).next_seq == 1


async def test_dedupe_by_input_id_across_generations(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_redis_core, "DEDUPE_WINDOW", 3)
    store = backend.store()
    record, _ = await _hosted(store)
    wid = record.worker_id
    first = await store.submit_input(wid, "a", "key-0", Strategy.ENQUEUE, now_s())
    for n in range(1, 5):
        await store.submit_input(wid, "b", f"key-{n}", Strategy.ENQUEUE, now_s())
    again = await store.submit_input(wid, "a", "key-0", Strategy.REJECT, now_s())
    assert again.duplicate and (again.seq, again.cursor) == (first.seq, first.cursor)
    assert await answer(store.client.hlen(store.keys.worker(wid).input_ids)) <= 3
    for n in range(5, 9):  # two more generations: key-0 is forgotten
        await store.submit_input(wid, "b", f"key-{n}", Strategy.ENQUEUE, now_s())
    fresh = await store.submit_input(wid, "a", "key-0", Strategy.ENQUEUE, now_s())
    assert not fresh.duplicate and fresh.seq == 10


async def test_submission_cursor_precedes_the_user_message(backend: Backend) -> None:
    store = backend.store()
    record, _ = await _hosted(store)
    sub = await store.submit_input(record.worker_id, "hi", new_id(), Strategy.REJECT, now_s())
    events = await store.read_events(record.worker_id, sub.cursor, 10)
    assert events[0].type == "user_message" and events[0].input_id == sub.input_id
    assert sub.host == MEMBER


# -- streams, trimming, retention --------------------------------------------------------------


async def test_entries_are_versioned_json_an_operator_can_tail(backend: Backend) -> None:
    store = backend.store()
    record, epoch = await _hosted(store)
    wid = record.worker_id
    await store.submit_input(wid, "q", new_id(), Strategy.ENQUEUE, now_s())
    keys = store.keys.worker(wid)
    [(input_entry, fields)] = await store.client.xrange(keys.inputs)
    assert json.loads(fields["i"])["v"] == 1 and json.loads(fields["i"])["seq"] == 1
    taken = await _take(store, wid, epoch)
    assert taken.item.entry_id == input_entry
    await _finish(store, wid, epoch, taken, RunOutcome(RunResult.FINISHED, "a"))
    raw = await store.client.xread({keys.events: "0"})
    entries = raw[0][1]
    assert all(set(f) == {"e"} for _, f in entries)
    bodies = [json.loads(f["e"]) for _, f in entries]
    assert all(b["v"] == 1 and "cursor" not in b for b in bodies)
    assert [b["type"] for b in bodies][:3] == ["state_changed", "state_changed", "user_message"]
    transcript = [json.loads(f["t"]) for _, f in await store.client.xrange(keys.transcript)]
    assert [(t["v"], t["role"]) for t in transcript] == [(1, "user"), (1, "assistant")]
    assert await store.client.exists(keys.inputs) == 0  # acknowledged, dropped when idle


async def test_stored_entries_leave_out_what_the_key_says_and_read_back_whole(
    backend: Backend,
) -> None:
    """Events and records are kept without the worker id (the key holds it), and read back as
    the API shows them; entries stored with it (before) read back the same."""
    store = backend.store()
    record, epoch = await _hosted(store)
    wid = record.worker_id
    await _exchange(store, wid, epoch, deltas=2)
    keys = store.keys.worker(wid)
    raw = [fields["e"] for _, fields in await store.client.xrange(keys.events)]
    assert raw and not any(wid in body or "worker_id" in body for body in raw)
    assert not await answer(store.client.hexists(keys.record, "worker_id"))
    assert (await store.get_worker(wid)).worker_id == wid
    legacy = TextDelta(worker_id=wid, ts=now_s(), run_id="r", input_id="i", text="old")
    await store.client.xadd(keys.events, {"e": dump_event(legacy)})
    events = await store.read_events(wid, None, 100)
    assert {event.worker_id for event in events} == {wid}
    assert events[-1].model_dump(exclude={"cursor"}) == legacy.model_dump(exclude={"cursor"})
    first = json.loads(events[0].model_dump_json())
    assert list(first)[:4] == ["v", "cursor", "worker_id", "ts"]  # the API's shape, unchanged


async def test_trimmed_stream_expires_stale_cursor_with_working_oldest(
    backend: Backend,
) -> None:
    store = backend.store(Settings(events_maxlen=1000))  # approximate (node) trimming
    record, epoch = await _hosted(store)
    wid = record.worker_id
    await store.submit_input(wid, "q", new_id(), Strategy.ENQUEUE, now_s())
    run_id = (await _take(store, wid, epoch)).claim.run_id
    stale = await store.last_cursor(wid)
    for _ in range(6):
        batch = [TextDelta(worker_id=wid, ts=now_s(), text="x") for _ in range(500)]
        await store.append_events(wid, epoch, batch, run_id=run_id)
    length = await store.client.xlen(store.keys.events(wid))
    assert 1000 <= length < 3000
    with pytest.raises(CursorExpired) as caught:
        await store.read_events(wid, stale, 10)
    oldest = caught.value.oldest_cursor
    resumed = await store.read_events(wid, oldest, 5000)
    assert len(resumed) == length  # from the oldest retained event, no second expiry
    first_retained = (await store.client.xrange(store.keys.events(wid), count=1))[0][0]
    assert resumed[0].cursor == first_retained
    newest = resumed[-1].cursor
    assert await store.read_events(wid, newest, 10) == []
    with pytest.raises(CursorExpired):
        await store.tail_events(wid, stale, 10, 50)  # told even to a follower


async def test_retention_ttl_on_every_key_when_stopped(backend: Backend) -> None:
    store = backend.store(Settings(retention_s=3600))
    record, epoch = await _hosted(store)
    wid = record.worker_id
    await _exchange(store, wid, epoch)
    await store.submit_input(wid, "q", new_id(), Strategy.ENQUEUE, now_s())
    keys = store.keys.worker(wid)
    assert (await store.request_stop(wid)).state is WorkerState.STOPPING
    assert await store.client.ttl(keys.record) == -1  # draining: not yet
    taken = await _take(store, wid, epoch)
    assert taken.claim.cancelled
    await _finish(store, wid, epoch, taken, RunOutcome(RunResult.CANCELLED, ""))
    assert (await store.get_worker(wid)).state is WorkerState.STOPPED
    assert await store.client.exists(keys.inputs) == 0  # nothing queued: dropped
    for key in [keys.record, keys.events, keys.transcript, keys.input_ids]:
        assert 3500 < await store.client.ttl(key) <= 3600, key
    assert 0 < await store.client.pttl(keys.lease) <= 60_000  # its own short TTL

    idle = await _worker(store)
    await store.request_stop(idle.worker_id)
    assert 3500 < await store.client.ttl(store.keys.record(idle.worker_id)) <= 3600


async def test_list_workers_drops_expired_index_entries(backend: Backend) -> None:
    store = backend.store()
    kept, gone = await _worker(store), await _worker(store)
    await store.client.delete(*store.keys.worker(gone.worker_id).all())  # as if expired
    assert [r.worker_id for r in await store.list_workers()] == [kept.worker_id]
    assert await store.client.zrange(store.keys.workers(), 0, -1) == [kept.worker_id]


# -- key layout --------------------------------------------------------------------------------


def test_every_key_of_a_worker_shares_one_slot() -> None:
    keys = Keys("yoi", "fleet")
    worker_id = new_id()
    slots = {key_slot(key.encode()) for key in keys.worker(worker_id).all()}
    assert len(slots) == 1
    runtime = {key_slot(k.encode()) for k in (keys.workers(), keys.scopes(), keys.members())}
    assert len(runtime) == 1
    other = {key_slot(key.encode()) for key in keys.worker(new_id()).all()}
    assert len(other) == 1  # (may or may not equal the first: slots spread workers)
    assert keys.bell("m-1").startswith("{yoi:fleet:m:m-1}")
    with pytest.raises(ValueError):
        keys.worker("a}b")
    with pytest.raises(ValueError):
        keys.bell("m{1")


def test_every_slot_has_a_hint_channel_tag_of_its_own() -> None:
    """submit.lua may SPUBLISH only in its Worker's slot: each slot's tag hashes to that slot
    (redis-py's own CRC16 says so), and a Worker's hint channel shares its keys' slot."""
    tags = [slot_tag(slot) for slot in range(SLOTS)]
    assert [key_slot(("{" + tag + "}").encode()) for tag in tags] == list(range(SLOTS))
    assert all(len(tag) == 4 and "{" not in tag and "}" not in tag for tag in tags)
    keys = Keys("yoi", "fleet")
    for _ in range(50):
        worker_id = new_id()
        prefix, suffix = keys.hint_around(worker_id)
        channel = prefix + "m-1" + suffix
        assert key_slot(channel.encode()) == key_slot(keys.record(worker_id).encode())
        assert channel == keys.hint_channel("m-1", keys.worker_slot(worker_id))
        assert keys.hint_around(worker_id) == (prefix, suffix)  # the slot's, remembered
    with pytest.raises(ValueError):
        keys.hint_channel("m{1", 0)


async def test_every_script_call_stays_on_one_slot(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What makes the fleet Redis Cluster safe: each script's KEYS hash to a single slot."""
    store = backend.store()
    calls: list[list[str]] = []
    evalsha = store.client.evalsha

    def spy(sha: str, numkeys: int, *args: str) -> object:
        calls.append(list(args[:numkeys]))
        return evalsha(sha, numkeys, *args)

    monkeypatch.setattr(store.client, "evalsha", spy)
    pipelined = store._pipeline.run  # the hot scripts, batched: the same calls, another door

    async def spy_pipelined(script: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        calls.append(list(keys))
        return await pipelined(script, keys, args)

    monkeypatch.setattr(store._pipeline, "run", spy_pipelined)
    record, epoch = await _hosted(store)
    await _exchange(store, record.worker_id, epoch)
    await store.cancel(record.worker_id)
    await store.read_events(record.worker_id, "0", 10)
    await store.claim_scope(new_id(), [ScopeEntry(path="/a", mode=ScopeMode.WRITE)], None)
    await store.request_stop(record.worker_id)
    await store.release_many({record.worker_id: epoch}, MEMBER)
    assert len(calls) >= 10
    for keys in calls:
        assert len({key_slot(key.encode()) for key in keys}) == 1, keys


def test_keys_of_runtimes_and_namespaces_never_collide() -> None:
    worker_id = new_id()
    layouts = [Keys("a", "b-c"), Keys("a-b", "c"), Keys("a", "b"), Keys("x", "b")]
    every = [key for k in layouts for key in [*k.worker(worker_id).all(), k.workers()]]
    assert len(every) == len(set(every))


async def test_runtimes_sharing_one_redis_are_separate(backend: Backend) -> None:
    one, two = backend.store(runtime_id="one"), backend.store(runtime_id="two")
    record = await _worker(one)
    await two.create(record)  # the same worker id in another runtime
    await one.acquire(record.worker_id, MEMBER, 60_000)
    assert (await two.get_worker(record.worker_id)).state is WorkerState.PENDING
    assert [r.worker_id for r in await two.list_workers()] == [record.worker_id]


# -- scope claims ------------------------------------------------------------------------------


async def test_scope_claim_of_a_worker_being_created_is_not_reclaimed(backend: Backend) -> None:
    store = backend.store()
    unborn = new_id()  # claimed, its create still on the way
    await store.claim_scope(unborn, [ScopeEntry(path="/repo", mode=ScopeMode.WRITE)], None)
    with pytest.raises(ScopeConflict):
        await store.claim_scope(new_id(), [ScopeEntry(path="/repo/a", mode=ScopeMode.WRITE)], None)


async def test_concurrent_overlapping_claims_admit_one(backend: Backend) -> None:
    stores = [backend.store() for _ in range(10)]
    entry = [ScopeEntry(path="/shared", mode=ScopeMode.WRITE)]
    results = await asyncio.gather(
        *(s.claim_scope(new_id(), entry, None) for s in stores), return_exceptions=True
    )
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, ScopeConflict) for r in results if r is not None)


# -- memory, hints, availability ---------------------------------------------------------------


async def test_idle_worker_after_one_exchange_fits_in_6_kb(real_redis: Backend) -> None:
    store = real_redis.store()
    record, epoch = await _hosted(store)
    await _exchange(store, record.worker_id, epoch)
    total = 0
    for key in store.keys.worker(record.worker_id).all():
        total += await store.client.memory_usage(key, samples=0) or 0
    index = await store.client.memory_usage(store.keys.workers(), samples=0) or 0
    total += index
    assert total <= 6 * 1024, total


async def test_rings_reach_the_listening_member_deduplicated(backend: Backend) -> None:
    store = backend.store()
    for worker_id in ("w-1", "w-2", "w-1"):
        await store._wakeups.ring("m-9", worker_id)  # before it listens: the doorbell keeps them
    wakes = store.wake_ups("m-9")
    async with contextlib.aclosing(wakes):
        got = [await asyncio.wait_for(anext(wakes), 5) for _ in range(2)]
        assert got == [WakeUp("w-1", cancels=True), WakeUp("w-2", cancels=True)]
        await store._wakeups.ring("m-9", "w-3")
        assert await asyncio.wait_for(anext(wakes), 5) == WakeUp("w-3", cancels=True)


async def test_a_pushed_hint_wakes_without_a_ring(backend: Backend) -> None:
    """submit.lua publishes to a listening host: no doorbell entry is written."""
    store = backend.store()
    record, _ = await _hosted(store)
    interrupts = {"assistant": Strategy.INTERRUPT}  # the profile's default, resolved by the script
    wake = await _hint_of_next_input(
        store, record.worker_id, "q", None, default_strategies=interrupts
    )
    assert wake == WakeUp(record.worker_id, cancels=True)
    assert await store.client.exists(store.keys.bell(MEMBER)) == 0


async def test_unreachable_redis_is_runtime_unavailable_quickly() -> None:
    port = free_port()
    store = RedisStore.from_url(
        f"redis://127.0.0.1:{port}/0", namespace="t", runtime_id="fleet", settings=Settings()
    )
    try:
        started = time.monotonic()
        for call in (
            store.get_worker(new_id()),
            store.list_workers(),
            store.submit_input(new_id(), "x", "i", Strategy.REJECT, now_s()),
            store.tail_events(new_id(), "0", 10, 5000),
            store.ping(),
        ):
            with pytest.raises(RuntimeUnavailable) as caught:
                await call
            assert caught.value.retryable
            assert str(port) not in caught.value.message and "127.0.0.1" not in caught.value.message
        await store._wakeups.ring("m1", new_id())  # only a hint: dropped, not raised
        assert time.monotonic() - started < 5
    finally:
        await store.aclose()
        await store.aclose()  # idempotent


async def test_a_socket_closed_under_a_write_is_a_lost_connection(
    real_redis: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvloop raises RuntimeError for a write on a socket that closed under it (a primary
    killed mid-batch): the call answers a retryable RuntimeUnavailable, as for any lost
    connection, and the next call runs on a fresh connection. A member loop died of it."""
    store = real_redis.store()
    record = await _worker(store)
    closed = RuntimeError(
        "unable to perform operation on <TCPTransport closed=True reading=False 0x1>; "
        "the handler is closed"
    )
    send = AbstractConnection.send_packed_command
    failing = {"left": 2}

    async def closed_once(self: AbstractConnection, *args: Any, **kwargs: Any) -> None:
        if failing["left"]:
            failing["left"] -= 1
            raise closed
        await send(self, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", closed_once)
    for call in (  # a batched script, then a redis-py command
        store.submit_input(record.worker_id, "x", new_id(), Strategy.ENQUEUE, now_s()),
        store.list_workers(),
    ):
        with pytest.raises(RuntimeUnavailable) as caught:
            await call
        assert caught.value.retryable and "TCPTransport" not in caught.value.message
    sub = await store.submit_input(record.worker_id, "x", new_id(), Strategy.ENQUEUE, now_s())
    assert sub.seq == 1


def test_client_must_decode_responses() -> None:
    with pytest.raises(ValueError):
        RedisStore(
            fakeredis.FakeAsyncRedis(), namespace="t", runtime_id="fleet", settings=Settings()
        )


# -- the hot path in one script each, and batched under load -------------------------------------


async def test_take_run_writes_what_the_models_dump(backend: Backend) -> None:
    """The script builds the run_started event and the user transcript entry from the decoded
    input: the same JSON the models dump (the same values, escapes aside), whatever the text
    holds, and a timestamp kept to the millisecond."""
    store = backend.store()
    record, epoch = await _hosted(store)
    text = 'a "quote", a \\ backslash, ünïcode, 🙂, </script> and ,"ts": inside'
    sub = await store.submit_input(record.worker_id, text, "in-1:a", Strategy.ENQUEUE, now_s())
    run_id, ts = new_id(), now_s()
    taken = await store.take_run(record.worker_id, MEMBER, epoch, run_id, ts, 5)
    assert taken is not None and taken.item.text == text
    keys = store.keys.worker(record.worker_id)
    (_, fields), *_ = await answer(store.client.xrevrange(keys.transcript, count=1))
    user = TranscriptEntry(
        role=TranscriptRole.USER, text=text, ts=taken.item.ts, input_id="in-1:a", run_id=run_id
    )
    assert json.loads(fields["t"]) == json.loads(codec.transcript_json(user))
    assert taken.item.ts == round(taken.item.ts, 3)
    started = await answer(store.client.xrange(keys.events, min=taken.claim.cursor, count=1))
    want = RunStarted(worker_id=record.worker_id, ts=ts, run_id=run_id, input_id="in-1:a")
    assert json.loads(started[0][1]["e"]) == json.loads(dump_stored(want))
    assert "worker_id" not in started[0][1]["e"]  # the key says it: not repeated per event
    assert sub.seq == taken.item.seq


@pytest.mark.parametrize("ts", [1796215993.0464337, 1.0, 0.0, 1e-07, 123456789012.125, 1e16])
def test_take_templates_are_the_models_json_byte_for_byte(ts: float) -> None:
    """The templates are built once around placeholders, then filled per take: each must be
    exactly what the models themselves dump for that run id and ts."""
    run_id = new_id()
    started = RunStarted(worker_id="w", ts=ts, run_id=run_id, input_id="x", attempt=1)
    user = TranscriptEntry(role=TranscriptRole.USER, text="", ts=0.0, input_id="x", run_id=run_id)
    want = (
        codec.holes(dump_stored(started), ("input_id", "x"), ("attempt", 1)),
        codec.holes(codec.transcript_json(user), ("text", ""), ("ts", 0.0), ("input_id", "x")),
    )
    assert codec.take_templates(run_id, ts) == want


async def test_concurrent_scripts_go_in_batches_and_survive_a_script_flush(
    flushable: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = flushable.store()
    workers = [await _hosted(store) for _ in range(8)]
    sizes: list[int] = []
    real = _redis_batch.send_many  # what _redis_pipeline imported

    async def counted(transport: Transport, commands: Sequence[Routed], **kw: Any) -> list[Any]:
        sizes.append(len(commands))
        return await real(transport, commands, **kw)

    monkeypatch.setattr(_redis_pipeline, "send_many", counted)
    await answer(store.client.script_flush())  # a private server: nobody else's cache
    submitted = await asyncio.gather(
        *(
            store.submit_input(record.worker_id, f"n{n}", new_id(), Strategy.ENQUEUE, now_s())
            for record, _ in workers
            for n in range(5)
        )
    )
    assert max(sizes) > 1, sizes  # calls made while one was out went together
    by_worker: dict[str, list[int]] = {}
    for (record, _), sub in zip([w for w in workers for _ in range(5)], submitted, strict=True):
        by_worker.setdefault(record.worker_id, []).append(sub.seq)
    assert all(sorted(seqs) == [1, 2, 3, 4, 5] for seqs in by_worker.values())
    with pytest.raises(WorkerBusy):  # an error reply reaches its own caller only
        await asyncio.gather(
            store.submit_input(workers[0][0].worker_id, "x", new_id(), Strategy.REJECT, now_s()),
            store.read_events(workers[1][0].worker_id, None, 10),
        )


async def test_a_call_beside_a_lone_call_leaves_at_once_and_beside_waiting_calls_joins_them(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run_beside` (a run's first write behind its take): beside a lone call out it is sent at
    once, not after that call's answer; when calls wait it goes in their batch, as any call."""
    store = backend.store()
    pipeline, ring, bell = store._pipeline, store._scripts.ring, store.keys.bell("m-beside")
    args = argv("ring", worker_id="w-1", maxlen=100)
    gate, sizes = asyncio.Event(), []
    real = _redis_batch.send_many  # what _redis_pipeline imported

    async def held(transport: Transport, commands: Sequence[Routed], **kw: Any) -> list[Any]:
        sizes.append(len(commands))
        await gate.wait()
        return await real(transport, commands, **kw)

    monkeypatch.setattr(_redis_pipeline, "send_many", held)

    async def sent(expected: list[int]) -> None:
        async def now() -> bool:
            return sizes == expected

        await wait_until(now, timeout_s=5, what=f"batches {expected}")

    lone = asyncio.ensure_future(pipeline.run(ring, [bell], args))
    await sent([1])
    beside = asyncio.ensure_future(pipeline.run_beside(ring, [bell], args))
    await sent([1, 1])  # on its own connection while the lone call is held
    gate.set()
    await asyncio.gather(lone, beside)
    gate.clear()
    sizes.clear()
    first = asyncio.ensure_future(pipeline.run(ring, [bell], args))
    await sent([1])
    waiting = [asyncio.ensure_future(pipeline.run(ring, [bell], args)) for _ in range(2)]
    queued = pipeline._lane._waiting

    async def behind(count: int) -> bool:
        return len(queued) == count

    await wait_until(lambda: behind(2), timeout_s=5, what="two calls behind the one out")
    joined = asyncio.ensure_future(pipeline.run_beside(ring, [bell], args))
    await wait_until(lambda: behind(3), timeout_s=5, what="the call beside them among them")
    assert sizes == [1]  # nothing more left while the first is out
    gate.set()
    await asyncio.gather(first, *waiting, joined)
    assert sizes == [1, 3]  # the waiting two and the one beside them, as one batch
    assert await store.client.xlen(bell) == 6


async def test_a_failing_script_names_its_file_and_line(real_redis: Backend) -> None:
    """A script bug surfaces as `ScriptError` naming the .lua file and the line within it."""
    store = real_redis.store()
    record, epoch = await _hosted(store)
    source = (resources.files("runtime_worker.store") / "lua" / "finish_run.lua").read_text()
    failing = next(
        number
        for number, line in enumerate(source.splitlines(), start=1)
        if "redis.call('XADD', tr" in line
    )
    with pytest.raises(ScriptError, match=rf"^finish_run\.lua:{failing}: "):
        # Too few arguments: the transcript entry is missing where the script appends it.
        await translate_errors(_raw_finish)(store, record.worker_id, [epoch])


async def test_a_flagged_script_names_the_file_it_is_made_of(real_redis: Backend) -> None:
    """`renew_node` is renew.lua behind a `#!lua` line (Redis keeps that line's break): its
    errors name renew.lua and the line there, as renew's do."""
    store = real_redis.store()
    source = (resources.files("runtime_worker.store") / "lua" / "renew.lua").read_text()
    failing = next(
        number
        for number, line in enumerate(source.splitlines(), start=1)
        if "elseif ttl > 0" in line
    )
    lease = store.keys.lease(new_id())
    for script in (store._scripts.renew, store._scripts.renew_node):
        await store.client.set(lease, "m1")
        with pytest.raises(ScriptError, match=rf"^renew\.lua:{failing}: "):
            # A TTL that is no number: the comparison fails where the lease is renewed.
            await translate_errors(_raw_script)(store, script, [lease], ["m1", "soon"])


async def _raw_script(store: RedisStore, script: Any, keys: list[str], args: list[Any]) -> Any:
    return await script(keys, args)


async def _raw_finish(store: RedisStore, worker_id: str, args: list[Any]) -> Any:
    return await store._scripts.finish_run(store.keys.worker(worker_id).all(), args)


def test_every_script_names_its_arguments_once() -> None:
    """Arguments have names in one place, the script's `args({...})` list; Python passes them
    by those names and no script reads ARGV by position."""
    folder = resources.files("runtime_worker.store") / "lua"
    for script in (f.name for f in dataclasses.fields(Scripts)):
        names = arg_names(script)
        assert len(names) == len(set(names)), script
        assert "ARGV" not in (folder / f"{file_of(script)}.lua").read_text(), script
    assert argv("renew", [3, 4], member="m", ttl_ms=0) == ["m", 0, 3, 4]
    assert arg_names("renew_node") == arg_names("renew") == ("member", "ttl_ms")
    with pytest.raises(TypeError):
        argv("renew", member="m")  # one missing
    with pytest.raises(TypeError):
        argv("renew", member="m", ttl_ms=0, extra=2)


async def test_idle_streams_are_rewritten_after_the_first_runs_and_then_sparsely(
    real_redis: Backend,
) -> None:
    """finish_run.lua rewrites an idle Worker's short streams after runs 1-4, 8, 16, ...: after
    the 8th the streams are at their exact size (a rewrite by hand frees nothing more)."""
    store = real_redis.store()
    record, epoch = await _hosted(store)
    keys = store.keys.worker(record.worker_id)

    async def used() -> int:
        return sum([await store.client.memory_usage(k, samples=0) or 0 for k in keys.all()])

    async def rewritten() -> int:
        for key in (keys.events, keys.transcript):
            blob = await store.client.dump(key)
            await store.client.restore(key, 0, blob, replace=True)
        return await used()

    sizes = {}
    for runs in range(1, 9):
        await _exchange(store, record.worker_id, epoch)
        sizes[runs] = (await used(), await rewritten())
    assert all(sizes[n][0] == sizes[n][1] for n in (1, 2, 3, 4, 8)), sizes
    assert any(sizes[n][0] > sizes[n][1] for n in (5, 6, 7)), sizes  # the slack left between


# -- the host's copy of the history ---------------------------------------------------------------


async def _fresh_history(store: RedisStore, worker_id: str, limit: int) -> list[tuple[str, str]]:
    page = await store.client.xrevrange(store.keys.worker(worker_id).transcript, count=limit)
    entries = [json.loads(fields["t"]) for _, fields in reversed(page)]
    return [(entry["role"], entry["text"]) for entry in entries]


def _count_fresh_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    parse = codec.history

    def counted(raw: str) -> list[tuple[str, str]]:
        reads.append(raw)
        return parse(raw)

    monkeypatch.setattr(codec, "history", counted)
    return reads


async def _run_once(store: RedisStore, worker_id: str, epoch: int, n: int, limit: int) -> TakenRun:
    await store.submit_input(worker_id, f"question {n}", new_id(), Strategy.REJECT, now_s())
    taken = await store.take_run(worker_id, MEMBER, epoch, new_id(), now_s(), limit)
    assert taken is not None
    # answers, empty failures (a notice entry) and partial failures, in turn
    result = RunResult.FINISHED if n % 3 else RunResult.FAILED
    await _finish(store, worker_id, epoch, taken, RunOutcome(result, f"a{n}" * (n % 2), 1, 1))
    return taken


@pytest.mark.parametrize("maxlen", [3, 500])
async def test_takes_answer_the_hosts_copy_of_the_history_as_a_fresh_read(
    real_redis: Backend, monkeypatch: pytest.MonkeyPatch, maxlen: int
) -> None:
    """The copy is kept from the take's and the finish's own entries, bounded like the
    transcript (a transcript of 3 entries trims below the limit of 5)."""
    store = real_redis.store()
    record = await _worker(store, transcript_maxlen=maxlen)
    epoch = await store.acquire(record.worker_id, MEMBER, 60_000)
    assert epoch is not None
    reads = _count_fresh_reads(monkeypatch)
    for n in range(9):
        await store.submit_input(
            record.worker_id, f"question {n}", new_id(), Strategy.REJECT, now_s()
        )
        taken = await store.take_run(record.worker_id, MEMBER, epoch, new_id(), now_s(), 5)
        assert taken is not None
        assert taken.history == await _fresh_history(store, record.worker_id, 5)
        assert taken.history[-1] == ("user", f"question {n}")
        result = RunResult.FINISHED if n % 3 else RunResult.FAILED
        outcome = RunOutcome(result, f"a{n}" * (n % 2), 1, 1)
        await _finish(store, record.worker_id, epoch, taken, outcome)
    assert len(reads) == 1  # the first take only


async def test_a_copy_behind_the_transcript_or_of_another_epoch_is_read_afresh(
    real_redis: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = real_redis.store(), real_redis.store()
    record, epoch = await _hosted(one)
    worker_id = record.worker_id
    reads = _count_fresh_reads(monkeypatch)
    for n in range(2):
        await _run_once(one, worker_id, epoch, n, 10)
    assert len(reads) == 1
    # An entry the copy never saw (a reply lost after the script ran, a failover): afresh.
    transcript = one.keys.worker(worker_id).transcript
    ((_, newest),) = await one.client.xrevrange(transcript, count=1)
    written = json.loads(newest["t"]) | {"text": "written behind the copy"}
    await one.client.xadd(transcript, {"t": json.dumps(written)})
    taken = await _run_once(one, worker_id, epoch, 2, 10)
    assert len(reads) == 2
    assert taken.history == (await _fresh_history(one, worker_id, 10))[:-1]
    assert ("assistant", "written behind the copy") in taken.history
    # Another host ran the Worker meanwhile: its new epoch's first take reads afresh.
    assert await one.release_many({worker_id: epoch}, MEMBER) == {worker_id}
    other = await two.acquire(worker_id, "m-2", 60_000)
    assert other is not None
    await two.submit_input(worker_id, "to two", new_id(), Strategy.REJECT, now_s())
    on_two = await two.take_run(worker_id, "m-2", other, new_id(), now_s(), 10)
    assert on_two is not None
    await _finish(two, worker_id, other, on_two, RunOutcome(RunResult.FINISHED, "from two", 1, 1))
    assert await two.release_many({worker_id: other}, "m-2") == {worker_id}
    again = await one.acquire(worker_id, MEMBER, 60_000)
    assert again is not None
    reads.clear()
    await one.submit_input(worker_id, "back", new_id(), Strategy.REJECT, now_s())
    back = await one.take_run(worker_id, MEMBER, again, new_id(), now_s(), 10)
    assert back is not None
    assert len(reads) == 1
    assert back.history == await _fresh_history(one, worker_id, 10)
    assert ("assistant", "from two") in back.history


# -- runs started ahead of their take (`take_ahead`) ---------------------------------------------


async def _hint_of_next_input(
    store: RedisStore,
    worker_id: str,
    text: str,
    strategy: Strategy | None = Strategy.REJECT,
    **options: Any,
) -> WakeUp:
    """Submit `text` (with `options`) while `MEMBER` listens: the pushed hint it gets (the
    doorbell's rings of earlier submits, made while nobody listened, cleared first)."""
    await store.client.delete(store.keys.bell(MEMBER))
    wakes = store.wake_ups(MEMBER)
    async with contextlib.aclosing(wakes):
        listening = asyncio.ensure_future(anext(wakes))

        async def subscribed() -> bool:
            client = store.client
            assert isinstance(client, Redis)  # this test's backends are single-node
            channels = await client.pubsub_numsub(store.keys.bell(MEMBER))
            return bool(channels and channels[0][1])

        await wait_until(subscribed, timeout_s=5, what="the member's hint subscription")
        await store.submit_input(worker_id, text, new_id(), strategy, now_s(), **options)
        return await asyncio.wait_for(listening, 5)


def _input_of(hint: WakeUp) -> QueuedInput:
    assert hint.ahead is not None, hint
    return hint.ahead


def _delta(worker_id: str, run_id: str, input_id: str, text: str) -> TextDelta:
    return TextDelta(worker_id=worker_id, ts=now_s(), run_id=run_id, input_id=input_id, text=text)


async def _events_of(store: RedisStore, worker_id: str) -> list[dict[str, Any]]:
    page = await store.client.xrange(store.keys.worker(worker_id).events)
    return [json.loads(fields["e"]) for _, fields in page]


async def test_an_idle_workers_hint_carries_its_input_and_a_busy_ones_none(
    backend: Backend,
) -> None:
    store = backend.store()
    record, epoch = await _hosted(store)
    worker_id = record.worker_id
    hint = await _hint_of_next_input(store, worker_id, "first question")
    assert (hint.worker_id, hint.cancels) == (worker_id, False)
    item = hint.ahead
    assert item is not None and (item.seq, item.text) == (1, "first question")
    taken = await store.take_run(worker_id, MEMBER, epoch, new_id(), now_s(), 5)
    assert taken is not None and taken.item.input_id == item.input_id
    # An interrupt's hint stays bare (it cancels), and so does one too large to carry.
    interrupt = await _hint_of_next_input(store, worker_id, "stop that", Strategy.INTERRUPT)
    assert interrupt == WakeUp(worker_id, cancels=True)
    await _finish(store, worker_id, epoch, taken, RunOutcome(RunResult.FINISHED, "a", 1, 1))
    second = await store.take_run(worker_id, MEMBER, epoch, new_id(), now_s(), 5)
    assert second is not None
    await _finish(store, worker_id, epoch, second, RunOutcome(RunResult.FINISHED, "b", 1, 1))
    long_text = "x" * _redis_wakeups.AHEAD_MAX_BYTES
    assert await _hint_of_next_input(store, worker_id, long_text) == WakeUp(worker_id, False)


async def test_a_run_started_ahead_is_the_run_the_take_answers_and_its_writes_go_in(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against a plain take of the same input on another Worker: the same input, history and
    claim, and the run's appends (`ahead=True`) written, while the take reads no history."""
    store = backend.store()
    (ahead_worker, epoch), (plain_worker, plain_epoch) = await _hosted(store), await _hosted(store)
    for worker_id, at in ((ahead_worker.worker_id, epoch), (plain_worker.worker_id, plain_epoch)):
        for n in range(3):
            await _run_once(store, worker_id, at, n, 4)
    reads = _count_fresh_reads(monkeypatch)
    hint = await _hint_of_next_input(store, ahead_worker.worker_id, "question 3")
    ahead = store.take_ahead(
        ahead_worker.worker_id, MEMBER, epoch, new_id(), now_s(), 4, _input_of(hint)
    )
    assert ahead is not None
    guess = ahead.guess
    delta = _delta(ahead_worker.worker_id, guess.claim.run_id, guess.item.input_id, "You ")
    # Written from a task started after the take's, before its answer, as a turn writes.
    appended = asyncio.ensure_future(
        store.append_events(
            ahead_worker.worker_id, epoch, [delta], run_id=guess.claim.run_id, ahead=True
        )
    )
    taken = await ahead.taken
    cursor = await appended
    assert taken is not None and taken.claim.ahead
    await store.submit_input(
        plain_worker.worker_id, "question 3", new_id(), Strategy.REJECT, now_s()
    )
    plain = await store.take_run(plain_worker.worker_id, MEMBER, plain_epoch, new_id(), now_s(), 4)
    assert plain is not None and not plain.claim.ahead
    assert reads == []  # both copies were current
    assert taken.history == guess.history == plain.history
    assert taken.history == await _fresh_history(store, ahead_worker.worker_id, 4)
    assert (taken.item.seq, taken.item.text, taken.item.input_id) == (
        guess.item.seq,
        guess.item.text,
        guess.item.input_id,
    )
    assert taken.claim.attempt == 1 and not taken.claim.cancelled
    events = await _events_of(store, ahead_worker.worker_id)
    assert [e["type"] for e in events[-4:]] == [
        "user_message",
        "state_changed",
        "run_started",
        "text_delta",
    ]
    assert events[-1]["text"] == "You " and events[-2]["run_id"] == guess.claim.run_id
    assert (
        cursor
        == (
            await store.client.xrevrange(store.keys.worker(ahead_worker.worker_id).events, count=1)
        )[0][0]
    )
    await _finish(
        store, ahead_worker.worker_id, epoch, taken, RunOutcome(RunResult.FINISHED, "You ", 1, 1)
    )
    # The finish ends what the confirmation let in: a later run's ahead write is refused.
    await store.submit_input(
        ahead_worker.worker_id, "question 4", new_id(), Strategy.REJECT, now_s()
    )
    later = await store.take_run(ahead_worker.worker_id, MEMBER, epoch, new_id(), now_s(), 4)
    assert later is not None and not later.claim.ahead
    late = _delta(ahead_worker.worker_id, later.claim.run_id, later.item.input_id, "no")
    with pytest.raises(LeaseLost):
        await store.append_events(
            ahead_worker.worker_id, epoch, [late], run_id=later.claim.run_id, ahead=True
        )
    await store.append_events(ahead_worker.worker_id, epoch, [late], run_id=later.claim.run_id)


async def _unconfirmed(
    store: RedisStore, worker_id: str, epoch: int, hint: WakeUp, limit: int = 4
) -> tuple[TakenRun, TakenRun | None, list[dict[str, Any]]]:
    """A start ahead of `hint`'s input whose take must not confirm it: the guess, what the take
    answered, and the events before its refused write."""
    ahead = store.take_ahead(worker_id, MEMBER, epoch, new_id(), now_s(), limit, _input_of(hint))
    assert ahead is not None
    guess = ahead.guess
    taken = await ahead.taken
    before = await _events_of(store, worker_id)
    delta = _delta(worker_id, guess.claim.run_id, guess.item.input_id, "never")
    with pytest.raises(LeaseLost):
        await store.append_events(worker_id, epoch, [delta], run_id=guess.claim.run_id, ahead=True)
    assert await _events_of(store, worker_id) == before
    return guess, taken, before


async def test_a_start_ahead_of_a_cancelled_input_is_not_confirmed(backend: Backend) -> None:
    store = backend.store()
    record, epoch = await _hosted(store)
    worker_id = record.worker_id
    await _run_once(store, worker_id, epoch, 0, 4)
    hint = await _hint_of_next_input(store, worker_id, "cancel me")
    assert (await store.cancel(worker_id)).cancelled
    guess, taken, _ = await _unconfirmed(store, worker_id, epoch, hint)
    assert taken is not None and taken.claim.cancelled and not taken.claim.ahead
    assert taken.claim.run_id == guess.claim.run_id  # the take's own run, to end as cancelled


async def test_a_start_ahead_on_a_copy_behind_the_transcript_is_not_confirmed(
    backend: Backend,
) -> None:
    store = backend.store()
    record, epoch = await _hosted(store)
    worker_id = record.worker_id
    for n in range(2):
        await _run_once(store, worker_id, epoch, n, 4)
    hint = await _hint_of_next_input(store, worker_id, "question 2")
    # An entry the copy never saw (a failover that lost writes, a reply lost): the history the
    # take reads is not the one the run started ahead with.
    transcript = store.keys.worker(worker_id).transcript
    ((_, newest),) = await store.client.xrevrange(transcript, count=1)
    written = json.loads(newest["t"]) | {"text": "written behind the copy"}
    await store.client.xadd(transcript, {"t": json.dumps(written)})
    guess, taken, _ = await _unconfirmed(store, worker_id, epoch, hint)
    assert taken is not None and not taken.claim.ahead
    assert ("assistant", "written behind the copy") in taken.history
    assert ("assistant", "written behind the copy") not in guess.history


async def test_a_start_ahead_of_another_input_than_the_take_starts_is_not_confirmed(
    backend: Backend,
) -> None:
    """A hint that is not of the next input to run (one taken before it still unfinished:
    here, as after a lost host) starts nothing the take confirms."""
    store = backend.store()
    record, epoch = await _hosted(store)
    worker_id = record.worker_id
    await _run_once(store, worker_id, epoch, 0, 4)
    hint = await _hint_of_next_input(store, worker_id, "question 1")
    await store.submit_input(worker_id, "question 2", new_id(), Strategy.ENQUEUE, now_s())
    stale = WakeUp(worker_id, False, dataclasses.replace(_input_of(hint), seq=3))
    _, taken, _ = await _unconfirmed(store, worker_id, epoch, stale)
    assert taken is not None and taken.item.seq == 2 and not taken.claim.ahead


async def test_no_start_ahead_without_a_copy_of_the_history_or_an_entry(backend: Backend) -> None:
    store = backend.store()
    record, epoch = await _hosted(store)
    worker_id = record.worker_id
    hint = await _hint_of_next_input(store, worker_id, "first")
    # No take of this Worker yet in this process: its history is read by the take.
    assert store.take_ahead(worker_id, MEMBER, epoch, new_id(), now_s(), 4, _input_of(hint)) is None
    # A Worker sending no history needs no copy.
    ahead = store.take_ahead(worker_id, MEMBER, epoch, new_id(), now_s(), 0, _input_of(hint))
    assert ahead is not None
    taken = await ahead.taken
    assert taken is not None and taken.claim.ahead and taken.history == ahead.guess.history == []
    # A hint whose entry does not parse is a bare hint: the take reads the input.
    assert _redis_wakeups.wake_up_of(f"{worker_id} not json") == WakeUp(worker_id, False)
