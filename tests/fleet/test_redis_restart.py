"""Redis restarted under a running fleet (a private AOF redis-server, never the shared one)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.errors import RuntimeUnavailable
from shared.models import CreateWorker, SendInput, Strategy
from tests.fleet.support import (
    LEASE_TTL_MS,
    Fleet,
    all_events,
    create_workers,
    finished_counts,
    fleet_client,
    monotonic,
    records,
    wait_finished,
    wait_hosted,
    wait_members,
)
from tests.helpers import wait_until
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.redis]

CALL_DEADLINE_S = 3.0


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", ["--appendonly", "yes", "--appendfsync", "always"])
    server.start()
    yield server
    server.stop()


async def test_members_survive_a_redis_restart(
    private_redis: RedisServer, namespace: str, tmp_path: Path
) -> None:
    fleet = Fleet(private_redis.url, namespace, tmp_path)
    client = fleet_client(private_redis.url, namespace)
    try:
        fleet.start("m1", echo_delay_ms="20")
        fleet.start("m2", echo_delay_ms="20")
        await wait_members(client, ["m1", "m2"])
        worker_ids = await create_workers(client, 8)
        await wait_hosted(client, worker_ids)
        accepted = await asyncio.gather(
            *(client.send_input(w, SendInput(text="before the restart")) for w in worker_ids)
        )
        await wait_finished(
            client, {w: {a.input_id} for w, a in zip(worker_ids, accepted, strict=True)}
        )
        # Under load: queued inputs on every Worker, some streaming when Redis goes away.
        in_flight: dict[str, set[str]] = {w: set() for w in worker_ids}
        for round_ in range(3):
            sent = await asyncio.gather(
                *(
                    client.send_input(
                        w,
                        SendInput(
                            text=f"load {round_} one two three four five six seven",
                            strategy=Strategy.ENQUEUE,
                        ),
                    )
                    for w in worker_ids
                )
            )
            for worker_id, answer in zip(worker_ids, sent, strict=True):
                in_flight[worker_id].add(answer.input_id)

        async def streaming() -> bool:
            events = await all_events(client, worker_ids[0])
            mine = in_flight[worker_ids[0]]
            return any(e.type == "text_delta" and e.input_id in mine for e in events)

        await wait_until(streaming, timeout_s=10, what="answers streaming")
        epochs = {w: r.epoch for w, r in (await records(client)).items()}

        private_redis.stop()
        down_at = monotonic()
        # The outage lasts past the lease TTL (so every lease is gone when Redis returns); all
        # the while, every client call answers a typed error quickly, never hangs.
        calls = 0
        while monotonic() - down_at < LEASE_TTL_MS / 1000 + 0.5 or calls < 5:
            for call in (
                client.get_worker(worker_ids[0]),
                client.send_input(worker_ids[0], SendInput(text="while down")),
                client.create_worker(CreateWorker(display_name="down")),
            ):
                started = monotonic()
                with pytest.raises(RuntimeUnavailable):
                    await asyncio.wait_for(call, CALL_DEADLINE_S)
                assert monotonic() - started < CALL_DEADLINE_S
                calls += 1
        assert all(m.alive for m in fleet.members.values())

        private_redis.start()
        restarted_at = monotonic()

        async def retaken() -> bool:
            now = await records(client)
            return all(now[w].host in ("m1", "m2") and now[w].epoch > epochs[w] for w in epochs)

        await wait_until(retaken, timeout_s=20, what="workers re-taken under new epochs")
        print(f"re-taken {monotonic() - restarted_at:.2f}s after Redis came back")
        seen = await wait_finished(client, in_flight)
        for worker_id, events in seen.items():
            counts = finished_counts(events)
            assert all(counts[i] == 1 for i in in_flight[worker_id]), worker_id
        after = await asyncio.gather(
            *(client.send_input(w, SendInput(text="after the restart")) for w in worker_ids)
        )
        expected = {w: {a.input_id} for w, a in zip(worker_ids, after, strict=True)}
        seen = await wait_finished(client, expected)
        for worker_id, events in seen.items():
            assert finished_counts(events)[expected[worker_id].pop()] == 1
        assert all(m.alive for m in fleet.members.values())
    finally:
        await client.aclose()
        fleet.stop_all()
