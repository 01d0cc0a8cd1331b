"""A primary of a Redis Cluster with replicas killed under a running fleet: its replica is
promoted, calls meanwhile answer typed 503s, and afterwards no accepted input is lost, none is
answered twice, and no Worker's events come from two hosts at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
import redis

from runtime_worker.runtime import Runtime
from shared.errors import RuntimeUnavailable
from shared.events import Event, RunStarted
from shared.models import SendInput, Strategy
from tests.fleet.support import (
    Fleet,
    all_events,
    create_workers,
    finished_counts,
    fleet_client,
    monotonic,
    of_type,
    store_of,
    wait_finished,
    wait_hosted,
    wait_members,
)
from tests.helpers import wait_until
from tests.redis_cluster import RedisCluster
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def primary_owning(cluster: RedisCluster, key: str) -> RedisServer:
    admin = redis.RedisCluster.from_url(cluster.url)
    try:
        node = admin.nodes_manager.get_node_from_slot(admin.keyslot(key))
        return next(s for s in cluster.servers if s.port == int(node.port))
    finally:
        admin.close()


def no_late_writes(events: list[Event]) -> list[str]:
    """Events of a run written after a newer run of the same input started: what a second
    host writing at the same time would leave."""
    late = []
    for started in of_type(events, RunStarted):
        if started.attempt < 2:
            continue
        at = events.index(started)
        before = events[:at]  # a third attempt is newer than the second, not older
        older = {e.run_id for e in of_type(before, RunStarted, started.input_id)}
        late += [e.cursor for e in events[at:] if e.run_id in older]
    return late


async def send_all(
    client: Runtime, inputs: dict[str, str], texts: dict[str, str]
) -> tuple[dict[str, set[str]], dict[str, str]]:
    """Send each input (id → worker) once; the accepted ones, and those refused with a 503."""
    accepted: dict[str, set[str]] = {}
    refused: dict[str, str] = {}

    async def one(input_id: str, worker_id: str) -> None:
        request = SendInput(text=texts[input_id], input_id=input_id, strategy=Strategy.ENQUEUE)
        try:
            await client.send_input(worker_id, request)
        except RuntimeUnavailable:
            refused[input_id] = worker_id
        else:
            accepted.setdefault(worker_id, set()).add(input_id)

    await asyncio.gather(*(one(i, w) for i, w in inputs.items()))
    return accepted, refused


async def test_a_killed_primary_fails_over_losing_and_repeating_nothing(
    redis_cluster_replicas: RedisCluster, namespace: str, tmp_path: Path
) -> None:
    cluster = redis_cluster_replicas
    fleet = Fleet(cluster.url, namespace, tmp_path)
    client = fleet_client(cluster.url, namespace)
    try:
        fleet.start("m1", echo_delay_ms="20")
        fleet.start("m2", echo_delay_ms="20")
        await wait_members(client, ["m1", "m2"])
        worker_ids = await create_workers(client, 20)
        await wait_hosted(client, worker_ids)
        keys = store_of(client).keys
        # The victim: a primary holding Workers, not the node every process was given.
        victim = next(
            server
            for w in worker_ids
            if (server := primary_owning(cluster, keys.record(w))) is not cluster.servers[0]
        )
        words = " ".join(f"word{n}" for n in range(20))
        texts: dict[str, str] = {}
        expected: dict[str, set[str]] = {w: set() for w in worker_ids}
        pending: dict[str, str] = {}
        for round_ in range(2):
            batch = {f"r{round_}-{i}": w for i, w in enumerate(worker_ids)}
            texts.update({i: f"{i} {words}" for i in batch})
            accepted, refused = await send_all(client, batch, texts)
            assert not refused
            for worker_id, ids in accepted.items():
                expected[worker_id] |= ids

        async def streaming() -> bool:
            events = await all_events(client, worker_ids[0])
            return any(e.type == "text_delta" for e in events)

        await wait_until(streaming, timeout_s=10, what="answers streaming")
        heir = cluster.replica_of(victim)
        victim.kill()
        killed_at = monotonic()
        batch = {f"during-{i}": w for i, w in enumerate(worker_ids)}
        texts.update({i: f"{i} {words}" for i in batch})
        accepted, refused = await send_all(client, batch, texts)
        for worker_id, ids in accepted.items():
            expected[worker_id] |= ids
        pending.update(refused)
        await asyncio.to_thread(cluster.wait_promoted, heir)
        print(f"replica promoted {monotonic() - killed_at:.2f}s after the kill")
        print(f"{len(pending)} of {len(batch)} inputs sent meanwhile answered 503")

        async def resent() -> bool:  # a 503 is "try again, same input id"
            accepted, refused = await send_all(client, dict(pending), texts)
            for worker_id, ids in accepted.items():
                expected[worker_id] |= ids
                for input_id in ids:
                    pending.pop(input_id, None)
            return not refused

        await wait_until(resent, timeout_s=30, what="every refused input accepted on retry")
        seen = await wait_finished(client, expected, timeout_s=90)
        for worker_id, events in seen.items():
            assert finished_counts(events) == Counter(expected[worker_id]), worker_id
            assert no_late_writes(events) == [], worker_id
        assert all(m.alive for m in fleet.members.values()), fleet.logs()
    finally:
        await client.aclose()
        fleet.stop_all()
