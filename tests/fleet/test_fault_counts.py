"""The fleet's failure semantics with real `python -m runtime_worker` processes (issue 12):
dead letters count only crashes of the input's own run, liveness is judged on Redis's clock,
and rebalancing never restarts a running answer."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest

from runtime_worker.runtime import Runtime
from shared.events import Event, RunFinished, RunStarted
from shared.models import SendInput, Strategy
from tests.fleet.conftest import delete_namespace
from tests.fleet.support import (
    LEASE_TTL_MS,
    Fleet,
    all_events,
    create_workers,
    fleet_client,
    monotonic,
    of_type,
    records,
    wait_finished,
    wait_hosted,
    wait_members,
)
from tests.helpers import wait_until
from tests.redis_server import AOF, RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.redis]

FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
HAS_FAKETIME = FAKETIME_LIB.exists()
LONG = " ".join(f"word{n}" for n in range(40))  # 40 words: 4 s at 100 ms a word


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    data = tmp_path / "redis"
    data.mkdir()
    server = RedisServer(data, AOF)
    server.start()
    yield server
    server.stop()


@contextlib.asynccontextmanager
async def _fleet(url: str, namespace: str, workdir: Path) -> AsyncIterator[tuple[Fleet, Runtime]]:
    fleet = Fleet(url, namespace, workdir)
    client = fleet_client(url, namespace)
    try:
        yield fleet, client
    except BaseException:
        print(fleet.logs())
        raise
    finally:
        await client.aclose()
        fleet.stop_all()


def _results(events: Sequence[Event], input_id: str) -> list[str]:
    return [e.result for e in of_type(events, RunFinished, input_id)]


async def test_redis_restarted_four_times_dead_letters_no_healthy_input(
    private_redis: RedisServer, namespace: str, tmp_path: Path
) -> None:
    async with _fleet(private_redis.url, namespace, tmp_path) as (fleet, client):
        for name in ("m1", "m2"):
            fleet.start(name, echo_delay_ms="100", max_deliveries="1")
        await wait_members(client, ["m1", "m2"])
        worker_ids = await create_workers(client, 8)
        await wait_hosted(client, worker_ids)
        sent = await asyncio.gather(
            *(client.send_input(w, SendInput(text=LONG)) for w in worker_ids)
        )
        expected = {w: {a.input_id} for w, a in zip(worker_ids, sent, strict=True)}
        for restart in range(4):

            async def streaming(worker_id: str = worker_ids[restart]) -> bool:
                events = await all_events(client, worker_id)
                return any(e.type == "text_delta" for e in events[-3:])

            await wait_until(streaming, timeout_s=20, what="an answer streaming")
            private_redis.stop()
            down_at = monotonic()
            # Past the lease TTL: every lease is gone when Redis returns.
            await asyncio.sleep(LEASE_TTL_MS / 1000 + 0.5)  # settle-ok: the outage itself
            private_redis.start()
            print(f"restart {restart + 1}: down {monotonic() - down_at:.2f}s")
        seen = await wait_finished(client, expected, timeout_s=60)
        restarted = 0
        for worker_id, events in seen.items():
            (input_id,) = expected[worker_id]
            assert _results(events, input_id) == ["finished"], (worker_id, events[-3:])
            restarted += max(s.attempt for s in of_type(events, RunStarted, input_id)) > 1
        assert restarted > 0  # the restarts did interrupt answers, and none was dead-lettered
        assert all(m.alive for m in fleet.members.values())


async def test_a_poison_input_is_dead_lettered_and_no_innocent_one(
    redis_url: str, namespace: str, tmp_path: Path
) -> None:
    """Every crash also kills the innocent answers its host was running; only the poison's own
    crashes (those it ran alone) count, so it alone is dead-lettered."""
    names = itertools.count(1)
    async with _fleet(redis_url, namespace, tmp_path) as (fleet, client):
        env = {"echo_delay_ms": "100", "max_deliveries": "2", "provider": "chaos"}
        for _ in range(2):
            fleet.start(f"m{next(names)}", capacity=1000, raw_env=None, **env)
        await wait_members(client, ["m1", "m2"])
        innocent = await create_workers(client, 10, "innocent")
        (poison_worker,) = await create_workers(client, 1, "poison")
        await wait_hosted(client, [*innocent, poison_worker])
        sent = await asyncio.gather(*(client.send_input(w, SendInput(text=LONG)) for w in innocent))
        expected = {w: {a.input_id} for w, a in zip(innocent, sent, strict=True)}
        poison = await client.send_input(poison_worker, SendInput(text="/crash the host"))
        expected[poison_worker] = {poison.input_id}
        crashes = 0

        async def restart_the_dead() -> None:  # what a supervisor does: a new process
            nonlocal crashes
            while True:
                for member_id, member in list(fleet.members.items()):
                    if not member.alive and member_id in alive_names:
                        assert member.wait_exit() == 70
                        crashes += 1
                        alive_names.discard(member_id)
                        name = f"m{next(names)}"
                        fleet.start(name, capacity=1000, raw_env=None, **env)
                        alive_names.add(name)
                await asyncio.sleep(0.1)  # settle-ok: a supervisor's poll

        alive_names = {"m1", "m2"}
        supervisor = asyncio.ensure_future(restart_the_dead())
        try:
            seen = await wait_finished(client, expected, timeout_s=90)
        finally:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        (finished,) = of_type(seen[poison_worker], RunFinished, poison.input_id)
        assert (finished.result, finished.reason) == ("failed", "dead_letter")
        assert crashes >= 4  # two beside others (then a suspect), then two alone
        for worker_id in innocent:
            (input_id,) = expected[worker_id]
            assert _results(seen[worker_id], input_id) == ["finished"], worker_id
    delete_namespace(redis_url, namespace)


@pytest.mark.parametrize("skew", ["+30s", "-30s"])
async def test_a_member_with_a_skewed_clock_is_taken_over_within_the_lease(
    redis_url: str, namespace: str, tmp_path: Path, skew: str
) -> None:
    async with _fleet(redis_url, namespace, tmp_path) as (fleet, client):
        assert HAS_FAKETIME, "libfaketime is missing: run .ci/install-system"
        preload = {"LD_PRELOAD": str(FAKETIME_LIB), "FAKETIME": skew}
        skewed = fleet.start("skewed", raw_env=preload)
        worker_ids = await create_workers(client, 6)
        await wait_members(client, ["skewed"])
        await wait_hosted(client, worker_ids)
        fleet.start("steady")
        await wait_members(client, ["skewed", "steady"])
        held = {w: r.epoch for w, r in (await records(client)).items() if r.host == "skewed"}
        assert held
        skewed.signal(signal.SIGKILL)
        killed_at = monotonic()

        async def taken_over() -> bool:
            now = await records(client)
            return all(now[w].host == "steady" and now[w].epoch > e for w, e in held.items())

        await wait_until(taken_over, timeout_s=15, what="the skewed member's workers moved")
        took = monotonic() - killed_at
        print(f"clock {skew}: taken over in {took:.2f}s")
        assert took <= LEASE_TTL_MS / 1000 + 2


async def test_a_member_joining_under_load_restarts_no_running_answer(
    redis_url: str, namespace: str, tmp_path: Path
) -> None:
    async with _fleet(redis_url, namespace, tmp_path) as (fleet, client):
        fleet.start("m1", echo_delay_ms="20")
        await wait_members(client, ["m1"])
        worker_ids = await create_workers(client, 20)
        await wait_hosted(client, worker_ids)
        expected: dict[str, set[str]] = {w: set() for w in worker_ids}
        texts = ["a short one", "one two three four five six seven eight nine ten"]
        for round_ in range(12):
            # Some Workers idle now and then: those may move.
            senders = [w for i, w in enumerate(worker_ids) if (round_ + i) % 3]
            sent = await asyncio.gather(
                *(
                    client.send_input(w, SendInput(text=texts[i % 2], strategy=Strategy.ENQUEUE))
                    for i, w in enumerate(senders)
                )
            )
            for worker_id, answer in zip(senders, sent, strict=True):
                expected[worker_id].add(answer.input_id)
            if round_ == 3:
                fleet.start("m2", echo_delay_ms="20")
            await asyncio.sleep(0.3)  # settle-ok: the pace of the load
        seen = await wait_finished(client, expected, timeout_s=60)
        for worker_id, events in seen.items():
            assert [s.attempt for s in of_type(events, RunStarted) if s.attempt != 1] == []
            for input_id in expected[worker_id]:
                assert _results(events, input_id) == ["finished"]

        async def moved() -> bool:
            return any(r.host == "m2" for r in (await records(client)).values())

        await wait_until(moved, timeout_s=15, what="the joining member took a share")
