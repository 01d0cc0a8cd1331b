"""A primary of a Redis Cluster that stops answering (SIGSTOP, no replica to take over) under a
running fleet: the members' leases on the other nodes stay renewed, and those nodes' Workers
keep being served by the same hosts, under the same epochs, while it is away; once it is back,
its own Workers are served again."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from runtime_worker.runtime import Runtime
from shared.events import RunStarted
from shared.models import SendInput, Strategy
from tests.fleet.support import (
    Fleet,
    all_events,
    attempts,
    create_workers,
    fleet_client,
    monotonic,
    of_type,
    store_of,
    wait_finished,
    wait_hosted,
    wait_members,
)
from tests.redis_cluster import RedisCluster
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.redis]

LEASE_TTL_MS = 2000  # the members' and the client's: renewals every 0.67 s, a part waits 1 s
STOPPED_S = 2.5 * LEASE_TTL_MS / 1000  # long past every lease the stopped node's answer held


@pytest.fixture
def partial_cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    """Three primaries, no replicas, each serving its slots whatever the others do."""
    cluster = RedisCluster(tmp_path / "cluster", persistent=False, full_coverage=False)
    try:
        cluster.start()
        yield cluster
    finally:
        for server in cluster.servers:
            if server.proc is not None and server.proc.poll() is None:
                server.proc.send_signal(signal.SIGCONT)
        cluster.stop()


def servers_by_key(cluster: RedisCluster, keys: list[str]) -> list[RedisServer]:
    admin = redis.RedisCluster.from_url(cluster.url)
    try:
        ports = [int(admin.nodes_manager.get_node_from_slot(admin.keyslot(k)).port) for k in keys]
    finally:
        admin.close()
    by_port = {server.port: server for server in cluster.servers}
    return [by_port[port] for port in ports]


async def send_each(client: Runtime, worker_ids: list[str], tag: str) -> dict[str, set[str]]:
    sent: dict[str, set[str]] = {}
    for worker_id in worker_ids:
        input_id = f"{tag}-{worker_id}"
        request = SendInput(text=f"{tag} hello", input_id=input_id, strategy=Strategy.ENQUEUE)
        await client.send_input(worker_id, request)
        sent[worker_id] = {input_id}
    return sent


async def test_a_stopped_primary_lapses_only_its_own_workers_leases(
    partial_cluster: RedisCluster, namespace: str, tmp_path: Path
) -> None:
    cluster = partial_cluster
    fleet = Fleet(cluster.url, namespace, tmp_path)
    client = fleet_client(cluster.url, namespace)
    ttl = str(LEASE_TTL_MS)
    try:
        fleet.start("m1", lease_ttl_ms=ttl)
        fleet.start("m2", lease_ttl_ms=ttl)
        await wait_members(client, ["m1", "m2"])
        worker_ids = await create_workers(client, 30)
        await wait_hosted(client, worker_ids)
        keys = store_of(client).keys
        # The victim: neither the node every process was given nor the runtime-wide slot's
        # (members, index, unhosted set: a cluster without that node is down for the fleet).
        spared = servers_by_key(cluster, [keys.workers()])[0], cluster.servers[0]
        records = [keys.record(w) for w in worker_ids]
        homes = dict(zip(worker_ids, servers_by_key(cluster, records), strict=True))
        victim = next(s for s in cluster.servers if s not in spared)
        away = [w for w in worker_ids if homes[w] is victim]
        staying = [w for w in worker_ids if homes[w] is not victim]
        assert away and staying, "30 Workers over 3 nodes: some on each"
        before = {w: await client.store.get_worker(w) for w in worker_ids}
        hosts = {w: before[w].host for w in staying}
        assert {"m1", "m2"} == set(hosts.values()), "both members host Workers that stay"

        assert victim.proc is not None
        victim.proc.send_signal(signal.SIGSTOP)
        stopped_at = monotonic()
        # Served while the node is away: every Worker of the other nodes answers at once.
        during = await send_each(client, staying, "during")
        seen = await wait_finished(client, during, timeout_s=15)
        for worker_id, events in seen.items():
            assert attempts(events, f"during-{worker_id}") == [1], worker_id
        outage_left = max(0.0, stopped_at + STOPPED_S - monotonic())
        await asyncio.sleep(outage_left)  # settle-ok: the outage itself
        for worker_id in staying:  # still the same host under the same lease: no takeover
            record = await client.store.get_worker(worker_id)
            assert (record.host, record.epoch) == (hosts[worker_id], before[worker_id].epoch)
        late = await send_each(client, staying, "late")
        await wait_finished(client, late, timeout_s=15)
        assert all(m.alive for m in fleet.members.values()), fleet.logs()

        victim.proc.send_signal(signal.SIGCONT)
        await asyncio.to_thread(cluster.wait_ok)
        back = await send_each(client, away, "back")
        seen = await wait_finished(client, back, timeout_s=30)
        for worker_id, events in seen.items():
            started = of_type(events, RunStarted, f"back-{worker_id}")
            assert [e.attempt for e in started] == [1], worker_id
        for worker_id in away:  # their leases lapsed with the node: taken anew since
            assert (await client.store.get_worker(worker_id)).epoch > before[worker_id].epoch
        for worker_id in staying:  # and no answer of the others was ever cut short; once the
            # node is back, rebalancing may hand an idle one to the other member (a new epoch)
            events = await all_events(client, worker_id)
            assert all(e.attempt == 1 for e in of_type(events, RunStarted)), worker_id
        assert all(m.alive for m in fleet.members.values()), fleet.logs()
    finally:
        await client.aclose()
        fleet.stop_all()


async def test_a_sweep_reads_the_nodes_that_answer_and_leaves_the_others_unknown(
    partial_cluster: RedisCluster, namespace: str
) -> None:
    """A placement read while one primary is stopped: the other nodes' Workers are read, the
    stopped node's are reported missing (not complete), neither unindexed nor dropped from the
    unhosted set, so a sweep can go on taking without acting on their absence."""
    cluster = partial_cluster
    client = fleet_client(cluster.url, namespace)
    try:
        worker_ids = await create_workers(client, 30)
        store = store_of(client)
        spared = servers_by_key(cluster, [store.keys.workers()])[0], cluster.servers[0]
        records = [store.keys.record(w) for w in worker_ids]
        homes = dict(zip(worker_ids, servers_by_key(cluster, records), strict=True))
        victim = next(s for s in cluster.servers if s not in spared)
        away = {w for w in worker_ids if homes[w] is victim}
        staying = set(worker_ids) - away
        assert away and staying, "30 Workers over 3 nodes: some on each"
        await store.mark_unhosted(worker_ids)  # no member runs: every Worker needs a host
        assert victim.proc is not None
        victim.proc.send_signal(signal.SIGSTOP)
        try:
            during = await store.placements()
            unhosted = await store.unhosted()
        finally:
            victim.proc.send_signal(signal.SIGCONT)
        assert not during.complete and {r.worker_id for r in during.rows} == staying
        assert not unhosted.complete and {r.worker_id for r in unhosted.rows} == staying
        await asyncio.to_thread(cluster.wait_ok)
        after = await store.placements()  # nothing was unindexed while the node was away
        assert after.complete and {r.worker_id for r in after.rows} == set(worker_ids)
        again = await store.unhosted()  # nor left the unhosted set
        assert again.complete and {r.worker_id for r in again.rows} == set(worker_ids)
    finally:
        await client.aclose()
