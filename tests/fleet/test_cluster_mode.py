"""Cluster mode on a real Redis Cluster: found from the server, slots that move under a running
store (MOVED, ASK), and scheduled work that needs a Redis of its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.asyncio.cluster import ClusterNode

from runtime_worker.member import Member
from runtime_worker.runtime import Runtime
from runtime_worker.schedule import Scheduler, schedule_input
from runtime_worker.store._redis_client import MAP_READ_NODE_S, is_cluster
from runtime_worker.store.base import RunOutcome, WakeUp, WorkerRecord
from runtime_worker.store.redis import RedisStore
from shared.errors import UnsupportedOperation
from shared.events import TextDelta
from shared.ids import new_id
from shared.keys import key_slot
from shared.models import CreateWorker, RunResult, RuntimeKind, Strategy
from shared.settings import Settings
from shared.timeutil import now_s
from tests.fleet.support import HEARTBEAT_MS, LEASE_TTL_MS, store_of, wait_finished, wait_hosted
from tests.fleet.test_cluster import delete_cluster_namespace
from tests.helpers import wait_until
from tests.redis_cluster import RedisCluster

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def test_the_mode_comes_from_the_server_unless_forced(
    redis_cluster: RedisCluster, redis_url: str
) -> None:
    assert is_cluster(redis_cluster.url, "auto", 2.0)
    assert not is_cluster(redis_url, "auto", 2.0)
    assert not is_cluster(redis_cluster.url, "off", 2.0)
    assert is_cluster(redis_url, "on", 2.0)
    # Nothing answers: one server is assumed (and said); `on` starts a member regardless.
    assert not is_cluster("redis://127.0.0.1:1/0", "auto", 0.5)


@pytest.fixture
async def cluster_store(redis_cluster: RedisCluster, namespace: str) -> AsyncIterator[RedisStore]:
    settings = Settings(namespace=namespace)
    store = RedisStore.from_url(
        redis_cluster.url, namespace=namespace, runtime_id="fleet", settings=settings
    )
    assert store.cluster
    yield store
    await store.aclose()
    delete_cluster_namespace(redis_cluster.url, namespace)


def node_of(admin: redis.RedisCluster, slot: int) -> redis.cluster.ClusterNode:
    node: redis.cluster.ClusterNode | None = admin.nodes_manager.get_node_from_slot(slot)
    assert node is not None
    return node


def node_id(node: redis.cluster.ClusterNode, admin: redis.RedisCluster) -> str:
    return str(admin.cluster_myid(node))  # type: ignore[type-var]  # redis-py types a node here too narrowly


async def test_a_slot_moved_under_the_store_is_followed(
    redis_cluster: RedisCluster, cluster_store: RedisStore
) -> None:
    """Resharding as `redis-cli --cluster reshard` does it, one slot, under a store whose slot
    map is then stale: ASK while the slot migrates, MOVED once it has moved."""
    rt = Runtime("fleet", cluster_store, kind=RuntimeKind.FLEET, settings=cluster_store.settings)
    first = await rt.create_worker(CreateWorker(display_name="moving"))
    second = await rt.create_worker(CreateWorker(display_name="staying"))
    keys = cluster_store.keys.worker(first.worker_id).all()
    admin = redis.RedisCluster.from_url(redis_cluster.url, decode_responses=True)
    try:
        slot = admin.keyslot(keys[0])
        source = node_of(admin, slot)
        target = next(n for n in admin.get_primaries() if n.name != source.name)
        source_id, target_id = node_id(source, admin), node_id(target, admin)
        target.redis_connection.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source_id)
        source.redis_connection.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
        in_slot = source.redis_connection.execute_command("CLUSTER GETKEYSINSLOT", slot, 100)
        assert set(keys) & set(in_slot)
        source.redis_connection.execute_command(
            "MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", *in_slot
        )
        # Migrating: the source answers ASK for keys it no longer has.
        found = await cluster_store.get_worker_at(first.worker_id)
        assert found.record.worker_id == first.worker_id
        for node in admin.get_primaries():
            node.redis_connection.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
        # Moved: the store's map still names the source, which answers MOVED. A pipelined
        # script goes first, sent by the route its lane looked up: MOVED sends it again.
        routed = cluster_store._transport.route(keys[0])
        assert routed[0] == source.name
        sent = await cluster_store.submit_input(
            first.worker_id, "after the move", new_id(), Strategy.ENQUEUE, now_s()
        )
        assert sent.input_id
        assert cluster_store._transport.route(keys[0])[0] == target.name
        found = await cluster_store.get_worker_at(first.worker_id)
        assert found.record.display_name == "moving"
        rows = await cluster_store.listing()
        assert {r.worker_id for r in rows} == {first.worker_id, second.worker_id}
        moved_to = cluster_store._transport.client  # the map it follows now
        assert isinstance(moved_to, redis.asyncio.RedisCluster)
        assert moved_to.nodes_manager.get_node_from_slot(slot).name == target.name
    finally:
        admin.close()


async def test_scheduled_work_on_a_cluster_is_refused_without_its_own_redis(
    redis_cluster: RedisCluster, cluster_store: RedisStore, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(redis_url=redis_cluster.url, namespace=cluster_store.keys.namespace)
    send_at = datetime.now(UTC) + timedelta(seconds=1)
    with pytest.raises(UnsupportedOperation, match="YOI_SCHEDULER_REDIS_URL"):
        await schedule_input(settings, "fleet", "w1", "later", send_at=send_at)
    with caplog.at_level(logging.ERROR, logger="yoi.schedule"):
        await asyncio.wait_for(Scheduler(settings, cluster_store).run(), 5)  # returns at once
    assert "YOI_SCHEDULER_REDIS_URL" in caplog.text


async def test_scheduled_work_on_a_cluster_runs_on_its_own_redis(
    redis_cluster: RedisCluster, redis_url: str, namespace: str
) -> None:
    settings = Settings(
        redis_url=redis_cluster.url,
        scheduler_redis_url=redis_url,
        namespace=namespace,
        member_id="m1",
        lease_ttl_ms=LEASE_TTL_MS,
        heartbeat_ms=HEARTBEAT_MS,
        schedule_poll_s=0.1,
    )
    member = Member(settings)
    client = Runtime.fleet("fleet", settings)
    await member.start()
    try:
        assert store_of(client).cluster
        detail = await client.create_worker(CreateWorker(display_name="later"))
        await wait_hosted(client, [detail.worker_id])
        send_at = datetime.now(UTC) + timedelta(seconds=0.5)
        input_id = await schedule_input(
            settings, "fleet", detail.worker_id, "a scheduled hello", send_at=send_at
        )
        await wait_finished(client, {detail.worker_id: {input_id}}, timeout_s=15)
        assert member.failed is None
    finally:
        await member.stop(0)
        await client.aclose()
        delete_cluster_namespace(redis_cluster.url, namespace)
        single = redis.Redis.from_url(redis_url)
        try:  # arq's keys on the single node, this test's only
            for pattern in (f"arq:*{{{namespace}:*", f"{{{namespace}:*"):
                for key in single.scan_iter(match=pattern):
                    single.delete(key)
        finally:
            single.close()


def command_calls(cluster: RedisCluster, command: str) -> int:
    total = 0
    for server in cluster.servers:
        with redis.Redis(host="127.0.0.1", port=server.port) as conn:
            stats = conn.info("commandstats")
        total += int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))
    return total


def shard_listeners(admin: redis.RedisCluster, channel: str) -> int:
    """Subscribers of a shard channel on the node that serves its slot now."""
    node = node_of(admin, key_slot(channel))
    ((_, count),) = node.redis_connection.pubsub_shardnumsub(channel)
    return int(count)


async def hosted_worker(store: RedisStore, member: str) -> WorkerRecord:
    record = WorkerRecord(
        worker_id=new_id(), display_name="w", profile="companion", created_at=now_s()
    )
    await store.create(record)
    assert await store.acquire(record.worker_id, member, 60_000)
    return record


def input_hint(wake: WakeUp, worker_id: str, seq: int) -> None:
    """`wake` is the pushed hint of the new input `seq` ("q") of an idle Worker: its entry in."""
    assert (wake.worker_id, wake.cancels) == (worker_id, False)
    item = wake.ahead
    assert item is not None and (item.seq, item.text) == (seq, "q")


async def hint_when_subscribed(
    store: RedisStore, admin: redis.RedisCluster, worker_id: str, member: str
) -> WakeUp:
    """Once `member`'s subscriber listens on the channel of `worker_id`'s slot (on the node
    that serves the slot now), one input ("q") for the idle Worker reaches the member as a
    pushed hint with its entry: that hint."""
    channel = store.keys.hint_channel(member, store.keys.worker_slot(worker_id))
    await store.client.delete(store.keys.bell(member))  # rings of submits nobody heard
    wakes = store.wake_ups(member)
    listening = asyncio.ensure_future(anext(wakes))  # starts the readers
    try:
        await wait_until(
            lambda: asyncio.to_thread(lambda: shard_listeners(admin, channel) == 1),
            what="the member's shard subscriber",
        )
        sub = await store.submit_input(worker_id, "q", new_id(), Strategy.ENQUEUE, now_s())
        assert sub.host == member and not sub.duplicate
        wake = await asyncio.wait_for(listening, 5)
        input_hint(wake, worker_id, sub.seq)
        return wake
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
        await wakes.aclose()


async def test_on_a_cluster_an_input_is_hinted_on_the_hosts_shard_channel(
    cluster_store: RedisStore, redis_cluster: RedisCluster
) -> None:
    """A listening host hears a new input through sharded pub/sub: submit.lua SPUBLISHes on the
    host's channel of the Worker's slot; nothing is PUBLISHed (broadcast to every node) and the
    doorbell stream stays empty."""
    member = "m-shard"
    record = await hosted_worker(cluster_store, member)
    published = command_calls(redis_cluster, "publish")
    admin = redis.RedisCluster.from_url(redis_cluster.url, decode_responses=True)
    try:
        await hint_when_subscribed(cluster_store, admin, record.worker_id, member)
    finally:
        admin.close()
    assert await cluster_store.client.xlen(cluster_store.keys.bell(member)) == 0
    assert command_calls(redis_cluster, "publish") == published


async def test_on_a_cluster_a_run_started_ahead_of_its_take_is_confirmed_and_written(
    cluster_store: RedisStore, redis_cluster: RedisCluster
) -> None:
    """The hint's entry starts a run before its take answers: on a cluster the take and the
    run's first write go to the Worker's node in that order, the take confirms the run and the
    write goes in."""
    member, store = "m-ahead", cluster_store
    record = WorkerRecord(
        worker_id=new_id(), display_name="w", profile="companion", created_at=now_s()
    )
    await store.create(record)
    worker_id = record.worker_id
    epoch = await store.acquire(worker_id, member, 60_000)
    assert epoch is not None
    for text in ("one", "two"):  # the host's copy of the history, made by plain takes
        await store.submit_input(worker_id, text, new_id(), Strategy.ENQUEUE, now_s())
        taken = await store.take_run(worker_id, member, epoch, new_id(), now_s(), 4)
        assert taken is not None
        outcome = RunOutcome(RunResult.FINISHED, text, 1, 1)
        run_id = taken.claim.run_id
        await store.finish_run(worker_id, epoch, taken.item, outcome, now_s(), run_id=run_id)
    admin = redis.RedisCluster.from_url(redis_cluster.url, decode_responses=True)
    try:
        wake = await hint_when_subscribed(store, admin, worker_id, member)
    finally:
        admin.close()
    assert wake.ahead is not None
    ahead = store.take_ahead(worker_id, member, epoch, new_id(), now_s(), 4, wake.ahead)
    assert ahead is not None
    guess = ahead.guess
    delta = TextDelta(
        worker_id=worker_id,
        ts=now_s(),
        run_id=guess.claim.run_id,
        input_id=guess.item.input_id,
        text="You said",
    )
    written = asyncio.ensure_future(  # from a task started after the take's, as a turn's
        store.append_events(worker_id, epoch, [delta], run_id=guess.claim.run_id, ahead=True)
    )
    taken = await ahead.taken
    assert taken is not None and taken.claim.ahead and taken.history == guess.history
    assert await written
    page = await store.client.xrevrange(store.keys.worker(worker_id).events, count=2)
    assert [json.loads(fields["e"])["type"] for _, fields in page] == ["text_delta", "run_started"]


def move_slot(admin: redis.RedisCluster, slot: int) -> redis.cluster.ClusterNode:
    """Move `slot` with its keys to another primary, as `redis-cli --cluster reshard` does."""
    source = node_of(admin, slot)
    primaries: list[redis.cluster.ClusterNode] = admin.get_primaries()  # type: ignore[no-untyped-call]
    target = next(n for n in primaries if n.name != source.name)
    source_id, target_id = node_id(source, admin), node_id(target, admin)
    target.redis_connection.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source_id)
    source.redis_connection.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
    in_slot = source.redis_connection.execute_command("CLUSTER GETKEYSINSLOT", slot, 100)
    source.redis_connection.execute_command(
        "MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", *in_slot
    )
    for node in primaries:
        node.redis_connection.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
    return target


async def test_the_shard_subscriber_follows_its_slot_to_another_node(
    cluster_store: RedisStore, redis_cluster: RedisCluster
) -> None:
    """The source node unsubscribes the member from a slot it gives away: the member reads the
    slot map again and subscribes where the slot is now, and hints are pushed again."""
    member = "m-moving"
    record = await hosted_worker(cluster_store, member)
    slot = cluster_store.keys.worker_slot(record.worker_id)
    channel = cluster_store.keys.hint_channel(member, slot)
    admin = redis.RedisCluster.from_url(redis_cluster.url, decode_responses=True)
    wakes = cluster_store.wake_ups(member)
    listening = asyncio.ensure_future(anext(wakes))
    try:
        await wait_until(
            lambda: asyncio.to_thread(lambda: shard_listeners(admin, channel) == 1),
            what="the member's shard subscriber",
        )
        target = await asyncio.to_thread(move_slot, admin, slot)

        def on_target() -> bool:
            ((_, count),) = target.redis_connection.pubsub_shardnumsub(channel)
            return int(count) == 1

        await wait_until(lambda: asyncio.to_thread(on_target), what="a subscriber on the target")
        sub = await cluster_store.submit_input(
            record.worker_id, "q", new_id(), Strategy.ENQUEUE, now_s()
        )
        assert sub.host == member
        input_hint(await asyncio.wait_for(listening, 5), record.worker_id, sub.seq)
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
        await wakes.aclose()
        admin.close()
    assert await cluster_store.client.xlen(cluster_store.keys.bell(member)) == 0


async def test_concurrent_reads_of_the_slot_map_make_one(
    cluster_store: RedisStore, redis_cluster: RedisCluster
) -> None:
    """redis-py 5's map read races itself (its startup nodes replaced mid-walk): the store's
    client reads the map one call at a time, and callers that waited take the fresh one."""
    client = cluster_store.client
    assert isinstance(client, redis.asyncio.RedisCluster)
    await client.initialize()
    before = command_calls(redis_cluster, "cluster|slots")
    await asyncio.gather(*(client.nodes_manager.initialize() for _ in range(8)))
    assert command_calls(redis_cluster, "cluster|slots") - before == 1
    await client.nodes_manager.initialize()  # a later call reads again
    assert command_calls(redis_cluster, "cluster|slots") - before == 2


async def test_a_node_dropped_during_a_read_of_the_slot_map_does_not_break_it(
    cluster_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py's command path drops a node it could not reach from the startup nodes while a
    map read walks them (a failover): the read goes on ("dictionary changed size during
    iteration" killed a member's placement loop in the failover test)."""
    client = cluster_store.client
    assert isinstance(client, redis.asyncio.RedisCluster)
    await client.initialize()
    manager = client.nodes_manager
    names = list(manager.startup_nodes)
    assert len(names) > 2
    original = ClusterNode.execute_command

    async def dropping(node: ClusterNode, *args: Any, **kwargs: Any) -> Any:
        if node.name == names[0]:  # the killed primary, walked first
            manager.startup_nodes.pop(names[-1], None)  # as `RedisCluster._execute_command` does
            raise redis.exceptions.ConnectionError("the node is down")
        return await original(node, *args, **kwargs)

    monkeypatch.setattr(ClusterNode, "execute_command", dropping)
    await manager.initialize()
    monkeypatch.undo()
    assert manager.slots_cache  # the map was read


async def test_a_map_read_passes_a_node_that_stopped_answering(
    cluster_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client has no socket timeout (every call has its own deadline), and a node that
    stopped answering without refusing (a dropped network, a stopped server) held the map read,
    and every call waiting for the map behind it, for good: each node now gets
    `MAP_READ_NODE_S` to answer, then the read asks the next one."""
    client = cluster_store.client
    assert isinstance(client, redis.asyncio.RedisCluster)
    await client.initialize()
    manager = client.nodes_manager
    silent = next(iter(manager.startup_nodes))  # walked first
    original = ClusterNode.execute_command
    asked: list[str] = []

    async def hanging(node: ClusterNode, *args: Any, **kwargs: Any) -> Any:
        asked.append(node.name)
        if node.name == silent:
            await asyncio.Event().wait()  # no answer, no refusal
        return await original(node, *args, **kwargs)

    monkeypatch.setattr(ClusterNode, "execute_command", hanging)
    manager.slots_cache.clear()
    async with asyncio.timeout(MAP_READ_NODE_S + 5):
        await manager.initialize()
    monkeypatch.undo()
    assert asked[0] == silent and len(asked) > 1  # the silent node was asked, then the next
    assert manager.slots_cache  # the map was read from the others
    assert await client.ping()


async def test_a_map_read_after_every_startup_node_was_dropped_asks_the_last_map(
    cluster_store: RedisStore,
) -> None:
    """redis-py drops each node a command failed to reach from its startup nodes and refills
    them only from a map read that succeeded: drops of every one (a failover, under load) left
    the client unable to read the map ever again. It asks the nodes of the last map too."""
    client = cluster_store.client
    assert isinstance(client, redis.asyncio.RedisCluster)
    await client.initialize()
    manager = client.nodes_manager
    known = set(manager.nodes_cache)
    for name in list(manager.startup_nodes):
        manager.startup_nodes.pop(name, None)  # as `RedisCluster._execute_command` does
    await manager.initialize()
    assert set(manager.startup_nodes) == known
    assert await client.ping()


async def test_on_a_cluster_an_input_nobody_hears_rings_the_doorbell(
    cluster_store: RedisStore,
) -> None:
    """No subscriber on the shard channel (the host is not listening yet): SPUBLISH counts 0,
    so the store rings the host's doorbell stream, which the host reads once it listens."""
    member = "m-bell"
    record = await hosted_worker(cluster_store, member)
    sub = await cluster_store.submit_input(
        record.worker_id, "q", new_id(), Strategy.ENQUEUE, now_s()
    )
    assert sub.host == member
    bell = cluster_store.keys.bell(member)
    assert await cluster_store.client.xlen(bell) == 1  # one ring, for the one input
    wakes = cluster_store.wake_ups(member)
    async with contextlib.aclosing(wakes):
        assert await asyncio.wait_for(anext(wakes), 5) == WakeUp(record.worker_id, cancels=True)


async def test_a_sweep_while_the_records_node_lags_loses_no_worker_from_the_index(
    cluster_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep drops index entries without a record (retention expired them). On a cluster the
    index entry and the record live on different nodes: were the entry written while the
    record's node is slow, a sweep in between would drop a live Worker from the index for good."""
    transport = cluster_store._transport
    client = transport.client
    assert isinstance(client, redis.asyncio.RedisCluster)
    await client.initialize()

    def node(key: str) -> str:
        return str(client.nodes_manager.get_node_from_slot(client.keyslot(key)).name)

    worker_id = new_id()
    while node(cluster_store.keys.record(worker_id)) == node(cluster_store.keys.workers()):
        worker_id = new_id()  # the record on another node than the index
    slow = node(cluster_store.keys.record(worker_id))
    sent = transport._node_send
    swept = asyncio.Event()

    async def slow_node(name: str, commands: Sequence[bytes], *, wait: bool = False) -> list[Any]:
        if name == slow and any(b"EVALSHA" in c for c in commands):
            await swept.wait()  # the record's node answers only after a sweep ran
        return await sent(name, commands, wait=wait)

    monkeypatch.setattr(transport, "_node_send", slow_node)
    record = WorkerRecord(
        worker_id=worker_id, display_name="w", profile="companion", created_at=now_s()
    )
    creating = asyncio.ensure_future(cluster_store.create(record))
    # The record's node lags (the behaviour under test); whatever else the create sends
    # meanwhile lands on the other nodes within this time.
    await asyncio.sleep(0.2)  # settle-ok: the lag itself
    await cluster_store.placements()  # the sweep: drops index entries whose record is missing
    swept.set()
    await creating
    assert worker_id in {w.worker_id for w in await cluster_store.listing()}


async def _workers_by_node(store: RedisStore, each: int) -> dict[str, list[str]]:
    """New Workers, `each` on every node their keys may live on, by node."""
    transport = store._transport
    await transport.client.initialize()
    by_node: dict[str, list[str]] = {}
    for n in range(100 * each):
        worker_id = new_id()
        node = transport.node_name(store.keys.record(worker_id))
        if len(by_node.setdefault(node, [])) < each:
            record = WorkerRecord(
                worker_id=worker_id, display_name=f"w{n}", profile="companion", created_at=now_s()
            )
            await store.create(record)
            by_node[node].append(worker_id)
        if len(by_node) == 3 and all(len(w) == each for w in by_node.values()):
            return by_node
    raise AssertionError(f"no {each} Workers on each of three nodes: {by_node}")


async def test_a_node_that_does_not_answer_holds_back_no_call_for_the_other_nodes(
    cluster_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node whose part of a batch is stuck (here: held until the test lets it go) does not
    hold the calls for the other nodes back, and keeps one part out: its next calls wait for
    it, they do not pile up on the wire."""
    by_node = await _workers_by_node(cluster_store, 3)
    (stuck_node, stuck), (_, free), *_ = by_node.items()
    transport = cluster_store._transport
    send = transport._node_send
    release = asyncio.Event()
    stuck_sends = 0

    async def held(name: str, commands: Sequence[bytes], *, wait: bool = False) -> list[Any]:
        nonlocal stuck_sends
        if name == stuck_node:
            stuck_sends += 1
            await release.wait()
        return await send(name, commands, wait=wait)

    monkeypatch.setattr(transport, "_node_send", held)
    holding = [
        asyncio.ensure_future(
            cluster_store.submit_input(stuck[0], "q", new_id(), Strategy.ENQUEUE, now_s())
        )
    ]
    try:
        for worker_id in free:  # one after another, all while the stuck part is out
            holding.append(  # and one more for the stuck node each time
                asyncio.ensure_future(
                    cluster_store.submit_input(stuck[1], "q", new_id(), Strategy.ENQUEUE, now_s())
                )
            )
            async with asyncio.timeout(1.0):  # far below the 2 s deadline the stuck call has
                sub = await cluster_store.submit_input(
                    worker_id, "q", new_id(), Strategy.ENQUEUE, now_s()
                )
            assert sub.seq == 1
        assert not any(call.done() for call in holding)
        assert stuck_sends == 1
    finally:
        release.set()
    seqs = [(await call).seq for call in holding]
    assert seqs[0] == 1 and sorted(seqs[1:]) == list(range(1, len(free) + 1))


async def test_calls_made_together_for_every_node_leave_as_one_round(
    cluster_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls made in one turn of the event loop go out as one batch cut by node: one write
    per node, not a lone call first and the rest behind it."""
    by_node = await _workers_by_node(cluster_store, 4)
    for first, *_ in by_node.values():  # the script loaded on every node (NOSCRIPT: no resend)
        await cluster_store.submit_input(first, "q", new_id(), Strategy.ENQUEUE, now_s())
    by_node = {node: workers[1:] for node, workers in by_node.items()}
    transport = cluster_store._transport
    send = transport._node_send
    writes: list[tuple[str, int]] = []

    async def counted(name: str, commands: Sequence[bytes], *, wait: bool = False) -> list[Any]:
        writes.append((name, len(commands)))
        return await send(name, commands, wait=wait)

    monkeypatch.setattr(transport, "_node_send", counted)
    calls = [
        cluster_store.submit_input(worker_id, "q", new_id(), Strategy.ENQUEUE, now_s())
        for workers in by_node.values()
        for worker_id in workers
    ]
    subs = await asyncio.gather(*calls)
    assert all(sub.seq == 1 for sub in subs)
    assert sorted(writes) == sorted((node, len(w)) for node, w in by_node.items())


async def test_a_ring_to_a_node_that_does_not_answer_holds_back_no_accepted_input(
    cluster_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody heard the pushed hint, so the submit rings the host's doorbell, which lives on
    another node than the Worker: that node not answering drops the ring (only a hint), and
    the input, accepted already, is answered within a fraction of the call's deadline."""
    transport = cluster_store._transport
    await transport.client.initialize()
    member = "m-quiet-bell"
    bell_node = transport.node_name(cluster_store.keys.bell(member))
    record = await hosted_worker(cluster_store, member)
    while transport.node_name(cluster_store.keys.record(record.worker_id)) == bell_node:
        record = await hosted_worker(cluster_store, member)
    send = transport._node_send
    release = asyncio.Event()

    async def held(name: str, commands: Sequence[bytes], *, wait: bool = False) -> list[Any]:
        if name == bell_node:
            await release.wait()
        return await send(name, commands, wait=wait)

    monkeypatch.setattr(transport, "_node_send", held)
    try:
        async with asyncio.timeout(1.5):  # below the 2 s deadline the ring would have had
            sub = await cluster_store.submit_input(
                record.worker_id, "q", new_id(), Strategy.ENQUEUE, now_s()
            )
    finally:
        release.set()
    assert sub.seq == 1 and sub.host == member and not sub.duplicate


def _evalsha_calls(cluster: RedisCluster) -> dict[int, int]:
    """EVALSHA calls so far, by node port (commands a script runs are counted apart)."""
    calls = {}
    for server in cluster.servers:
        with redis.Redis(host="127.0.0.1", port=server.port) as conn:
            stats: dict[str, Any] = conn.info("commandstats")
        calls[server.port] = int(stats.get("cmdstat_evalsha", {}).get("calls", 0))
    return calls


async def test_a_renewal_makes_a_call_per_node_and_batch_whatever_the_slots(
    cluster_store: RedisStore, redis_cluster: RedisCluster
) -> None:
    """A member's leases spread over as many slots as it has Workers: renewing them costs a
    call per node (per `RENEW_BATCH`), not one per slot, and answers each lease as renew.lua
    does: renewed, or lost to another member."""
    by_node = await _workers_by_node(cluster_store, 12)
    workers = [w for ids in by_node.values() for w in ids]
    slots = {key_slot(cluster_store.keys.lease(w)) for w in workers}
    assert len(slots) > 30, "36 Workers: nearly a slot each"
    epochs = {w: await cluster_store.acquire(w, "m1", 5_000) for w in workers}
    taken = workers[::10]  # lost to another member: released, then acquired by m2
    for worker_id in taken:
        epoch = epochs[worker_id]
        assert epoch is not None
        await cluster_store.release_many({worker_id: epoch}, "m1")
        assert await cluster_store.acquire(worker_id, "m2", 5_000) is not None
    before = _evalsha_calls(redis_cluster)
    renewed = await cluster_store.renew("m1", {w: e or 0 for w, e in epochs.items()}, 60_000)
    after = _evalsha_calls(redis_cluster)
    assert renewed == {w: w not in taken for w in workers}
    # One call per node (the first on a node may be a NOSCRIPT answer and its rerun: 2).
    assert all(1 <= after[p] - before[p] <= 2 for p in after), (before, after)
    admin = redis.RedisCluster.from_url(redis_cluster.url)
    try:
        for worker_id in workers:  # m1's renewed; m2's left as m2 took them
            ttl = admin.pttl(cluster_store.keys.lease(worker_id))
            assert ttl <= 5_000 if worker_id in taken else ttl > 50_000, (worker_id, ttl)
    finally:
        admin.close()


async def test_a_renewal_sent_by_a_stale_map_renews_by_slot(
    cluster_store: RedisStore, redis_cluster: RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leases grouped as if one node served them all (a slot map not read yet, or moved
    since): the node refuses the keys it does not serve, and those leases are renewed by
    slot instead, every one of them, with nothing lost or reported lost."""
    by_node = await _workers_by_node(cluster_store, 4)
    workers = [w for ids in by_node.values() for w in ids]
    epochs = {w: await cluster_store.acquire(w, "m1", 5_000) or 0 for w in workers}
    monkeypatch.setattr(cluster_store._transport, "node_name", lambda key: "")
    tried: list[bool] = []
    renew_calls = cluster_store._renew_calls

    async def spy(*args: Any, by_node: bool) -> dict[str, bool]:
        tried.append(by_node)
        return await renew_calls(*args, by_node=by_node)

    monkeypatch.setattr(cluster_store, "_renew_calls", spy)
    renewed = await cluster_store.renew("m1", epochs, 60_000)
    assert renewed == dict.fromkeys(workers, True)
    assert tried == [True, False], "by node, refused, then by slot"
    admin = redis.RedisCluster.from_url(redis_cluster.url)
    try:
        assert all(admin.pttl(cluster_store.keys.lease(w)) > 50_000 for w in workers)
    finally:
        admin.close()
    assert cluster_store._renew_by_node, "a refused key is no reason to stop renewing by node"
