"""RedisStore's batched steps for members at scale (acquisitions, sweeps, listings, one-round-trip
creates and details) and the placement helpers they feed. Real Redis, and fakeredis where it can."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from runtime_worker.placement import preferred_first, prefers
from runtime_worker.store import _redis_core, _redis_host
from runtime_worker.store._redis_host import RENEW_BATCH, RENEW_SEND
from runtime_worker.store._redis_placement import hinted
from runtime_worker.store._scripts import answer
from runtime_worker.store.base import WorkerRecord
from runtime_worker.store.redis import RedisStore
from shared.ids import new_id
from shared.models import Strategy, WorkerState
from shared.timeutil import now_s
from tests.test_redis_store import Backend, _backend

MEMBER = "m1"


@pytest.fixture(params=["redis", "fakeredis"])
async def backend(
    request: pytest.FixtureRequest, redis_url: str, namespace: str
) -> AsyncIterator[Backend]:
    async with _backend(request.param, redis_url, namespace) as made:
        yield made


@pytest.fixture
async def private_redis(private_redis_url: str, namespace: str) -> AsyncIterator[Backend]:
    """A real Redis this suite started itself: the test below flushes its scripts."""
    async with _backend("redis", private_redis_url, namespace) as made:
        yield made


def _record(name: str = "w") -> WorkerRecord:
    return WorkerRecord(
        worker_id=new_id(), display_name=name, profile="assistant", created_at=now_s()
    )


async def _workers(store: RedisStore, count: int) -> list[str]:
    return [(await store.create(_record(f"w{n}"))).record.worker_id for n in range(count)]


async def test_acquire_many_tells_the_new_host_what_it_needs(backend: Backend) -> None:
    store = backend.store()
    idle, waiting, stopped = await _workers(store, 3)
    await store.submit_input(waiting, "hi", new_id(), Strategy.ENQUEUE, now_s())
    await store.request_stop(stopped)
    answers = await store.acquire_many([idle, waiting, stopped, new_id()], MEMBER, 60_000)
    assert set(answers) == {idle, waiting, stopped}  # a Worker that does not exist is left out
    assert answers[idle].epoch == 1 and not answers[idle].busy
    assert (answers[idle].profile, answers[idle].display_name) == ("assistant", "w0")
    assert answers[waiting].epoch == 1 and answers[waiting].busy
    assert answers[stopped].epoch == 0 and answers[stopped].holder is None
    record = await store.get_worker(idle)
    assert (record.host, record.epoch, record.state) == (MEMBER, 1, WorkerState.IDLE)


async def test_acquire_many_names_the_holder_and_how_long_it_holds(backend: Backend) -> None:
    store = backend.store()
    (worker_id,) = await _workers(store, 1)
    assert (await store.acquire_many([worker_id], "m2", 30_000))[worker_id].epoch == 1
    held = (await store.acquire_many([worker_id], MEMBER, 60_000))[worker_id]
    assert held.epoch == 0 and held.holder == "m2"
    assert 0 < held.expires_ms <= 30_000
    assert (await store.get_worker(worker_id)).epoch == 1  # nothing written


async def test_pending_work_finds_unfinished_inputs_and_vanished_workers(
    backend: Backend,
) -> None:
    store = backend.store()
    idle, waiting = await _workers(store, 2)
    await store.submit_input(waiting, "hi", new_id(), Strategy.ENQUEUE, now_s())
    vanished = new_id()
    assert await store.pending_work([idle, waiting, vanished]) == {waiting, vanished}


async def test_placements_read_what_placement_needs_and_prune_the_index(
    backend: Backend,
) -> None:
    store = backend.store()
    kept, busy, gone = await _workers(store, 3)
    await store.acquire(busy, MEMBER, 60_000)
    await store.submit_input(busy, "hi", new_id(), Strategy.ENQUEUE, now_s())
    await store.client.delete(*store.keys.worker(gone).all())  # as if expired
    found = {p.worker_id: p for p in (await store.placements()).rows}
    assert set(found) == {kept, busy}
    assert (found[kept].state, found[kept].host, found[kept].queue_depth) == (
        WorkerState.PENDING,
        None,
        0,
    )
    assert (found[busy].host, found[busy].epoch, found[busy].queue_depth) == (MEMBER, 1, 1)
    assert await store.client.zrange(store.keys.workers(), 0, -1) == [kept, busy]


async def test_unhosted_names_the_workers_that_may_need_a_host(backend: Backend) -> None:
    """Created and handed back: in the set; taken, ended or gone: out of it (a sweep's cost
    follows these, not the fleet's size)."""
    store = backend.store()
    taken, handed_back, stopped, gone, waiting = await _workers(store, 5)
    assert {p.worker_id for p in (await store.unhosted()).rows} == {
        taken,
        handed_back,
        stopped,
        gone,
        waiting,
    }
    answers = await store.acquire_many([taken, handed_back], MEMBER, 60_000)
    await store.settle_unhosted([taken, handed_back])  # what the member does once it hosts them
    assert await store.release_many({handed_back: answers[handed_back].epoch}, MEMBER) == {
        handed_back
    }
    await store.request_stop(stopped)
    await store.client.delete(*store.keys.worker(gone).all())  # as if expired
    found = {p.worker_id: p for p in (await store.unhosted()).rows}
    assert set(found) == {handed_back, waiting}
    assert (found[handed_back].host, found[handed_back].epoch) == (None, 1)
    members = await answer(store.client.smembers(store.keys.unhosted()))
    assert members == {handed_back, waiting}  # ended and gone ones left the set on the read
    await store.mark_unhosted([taken])
    await store.settle_unhosted([waiting])
    assert {p.worker_id for p in (await store.unhosted()).rows} == {handed_back, taken}


async def test_listing_matches_the_records(backend: Backend) -> None:
    store = backend.store()
    await _workers(store, 3)
    records = {r.worker_id: r for r in await store.list_workers()}
    listed = await store.listing()
    assert len(listed) == 3
    for entry in listed:
        record = records[entry.worker_id]
        assert (entry.display_name, entry.profile, entry.state, entry.created_at) == (
            record.display_name,
            record.profile,
            record.state,
            record.created_at,
        )


async def test_create_answers_the_first_cursor_indexes_and_hints(backend: Backend) -> None:
    store = backend.store()
    created = await store.create(_record())
    worker_id = created.record.worker_id
    assert created.cursor == await store.last_cursor(worker_id)
    assert created.record.state is WorkerState.PENDING
    assert await store.client.zrange(store.keys.workers(), 0, -1) == [worker_id]
    hints = await store.client.xrange(store.keys.placement())  # twice when the script was loaded
    assert {fields["w"] for _, fields in hints} == {worker_id}
    found = await store.get_worker_at(worker_id)
    assert found.cursor == created.cursor and found.record.worker_id == worker_id


async def test_create_after_redis_lost_its_scripts(private_redis: Backend) -> None:
    store = private_redis.store()
    await _workers(store, 1)  # the script is loaded
    await store.client.script_flush()
    created = await store.create(_record("after"))
    worker_id = created.record.worker_id
    assert (await store.get_worker(worker_id)).display_name == "after"
    assert worker_id in await store.client.zrange(store.keys.workers(), 0, -1)
    hinted = [fields["w"] for _, fields in await store.client.xrange(store.keys.placement())]
    assert hinted.count(worker_id) >= 1
    await store.client.script_flush()
    leases = {worker_id: (await store.acquire_many([worker_id], MEMBER, 60_000))[worker_id].epoch}
    await store.client.script_flush()
    assert await store.renew(MEMBER, leases, 60_000) == {worker_id: True}


async def test_a_batch_create_indexes_marks_and_hints_every_worker(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_redis_core, "SET_CHUNK", 4)  # two index and unhosted commands
    monkeypatch.setattr(_redis_core, "HINT_IDS", 3)  # three hints
    store = backend.store()
    records = [_record(f"b{n}") for n in range(7)]
    created = await store.create_workers(records)
    worker_ids = [r.worker_id for r in records]
    assert [c.record.worker_id for c in created] == worker_ids
    assert set(await store.client.zrange(store.keys.workers(), 0, -1)) == set(worker_ids)
    assert await answer(store.client.smembers(store.keys.unhosted())) == set(worker_ids)
    hints = await store.client.xrange(store.keys.placement())  # twice if the script was loaded
    assert [len(fields["ws"].split()) for _, fields in hints[:3]] == [3, 3, 1]
    assert list(dict.fromkeys(hinted(hints))) == worker_ids  # in order
    assert (await store.wait_placement("0-0", 0))[0] == worker_ids  # what members read
    unhosted = {r.worker_id for r in (await store.unhosted()).rows}
    assert unhosted == set(worker_ids)  # what a member's steady sweep reads


async def test_a_batch_create_after_redis_lost_its_scripts(private_redis: Backend) -> None:
    store = private_redis.store()
    await _workers(store, 1)  # the script is loaded
    await store.client.script_flush()
    records = [_record(f"after{n}") for n in range(3)]
    created = await store.create_workers(records)
    for record, made in zip(records, created, strict=True):
        assert (await store.get_worker(record.worker_id)).display_name == record.display_name
        assert made.cursor == await store.last_cursor(record.worker_id)
    indexed = set(await store.client.zrange(store.keys.workers(), 0, -1))
    assert {r.worker_id for r in records} <= indexed
    named = set(hinted(await store.client.xrange(store.keys.placement())))
    assert {r.worker_id for r in records} <= named


@pytest.mark.parametrize("send", [RENEW_SEND, RENEW_BATCH // 2 + 1])
async def test_renew_answers_each_lease_across_script_calls(
    backend: Backend, send: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # More leases than one renew call takes (and than one send, the second time): each answer
    # stays with its own Worker, a lease taken over (another holder) or expired is lost, the
    # rest get the new TTL.
    monkeypatch.setattr(_redis_host, "RENEW_SEND", send)
    store = backend.store()
    worker_ids = await _workers(store, RENEW_BATCH + 7)
    # Taken for 20 s (a shorter TTL ran out before the renewal on a loaded machine, fakeredis
    # being slow); renewed to 60 s, so a renewed lease is told by its TTL past 30 s.
    acquired = await store.acquire_many(worker_ids, MEMBER, 20_000)
    leases = {w: a.epoch for w, a in acquired.items()}
    taken, expired = worker_ids[3], worker_ids[RENEW_BATCH + 2]
    await store.client.set(store.keys.lease(taken), "m2")
    await store.client.delete(store.keys.lease(expired))
    renewed = await store.renew(MEMBER, {**leases, "not a worker id!": 1}, 60_000)
    assert {w for w, ok in renewed.items() if not ok} == {taken, expired, "not a worker id!"}
    assert set(renewed) == {*worker_ids, "not a worker id!"}
    assert await store.client.pttl(store.keys.lease(worker_ids[-1])) > 30_000
    assert await store.client.pttl(store.keys.lease(worker_ids[0])) > 30_000
    assert not await store.client.exists(store.keys.lease(expired))  # not written back
    assert await store.client.get(store.keys.lease(taken)) == "m2"


async def test_pruning_the_index_keeps_a_worker_whose_record_exists(backend: Backend) -> None:
    # A create retried after Redis lost its scripts indexes the Worker before its record is
    # written: a listing that saw the entry without a record must not lose it for good.
    store = backend.store()
    (worker_id,) = await _workers(store, 1)
    await store._unindex([worker_id])  # what a listing does with an entry it found bare
    assert await store.client.zrange(store.keys.workers(), 0, -1) == [worker_id]


async def test_member_views_say_how_long_each_member_is_silent(backend: Backend) -> None:
    store = backend.store()
    await store.heartbeat("m1", 10, 3)
    (view,) = await store.member_views()
    assert view.info.member_id == "m1" and view.info.alive and view.info.hosted == 3
    assert 0 <= view.silent_ms < store.member_alive_ms


@pytest.mark.parametrize("members", [["a"], ["a", "b"], ["a", "b", "c"]])
def test_each_worker_is_preferred_by_exactly_one_member(members: list[str]) -> None:
    worker_ids = [new_id() for _ in range(300)]
    for worker_id in worker_ids:
        assert sum(prefers(me, worker_id, members) for me in members) == 1
    for me in members:
        mine = [w for w in worker_ids if prefers(me, w, members)]
        order = preferred_first(worker_ids, me, members)
        assert order[: len(mine)] == mine and sorted(order) == sorted(worker_ids)
        assert len(mine) > len(worker_ids) / (2 * len(members))  # spread, roughly evenly
