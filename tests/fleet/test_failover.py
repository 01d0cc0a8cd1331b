"""Member processes on real Redis: spreading, kill -9, SIGSTOP past the lease, SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter

import pytest

from runtime_worker.runtime import Runtime
from shared.events import Event, RunFinished, RunStarted
from shared.models import SendInput, Strategy
from tests.fleet.support import (
    LEASE_TTL_MS,
    Fleet,
    all_events,
    create_workers,
    finished_counts,
    heartbeat_of,
    monotonic,
    of_type,
    records,
    wait_finished,
    wait_hosted,
    wait_members,
)
from tests.helpers import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.redis]


async def test_workers_spread_evenly_and_answer(fleet: Fleet, client: Runtime) -> None:
    names = ["m1", "m2", "m3"]
    for name in names:
        fleet.start(name)
    await wait_members(client, names)
    worker_ids = await create_workers(client, 200)
    await wait_hosted(client, worker_ids)

    def balanced(hosts: Counter[str | None]) -> bool:  # every member within 20 % of a third
        return set(hosts) == set(names) and all(
            abs(n - 200 / 3) <= 0.2 * 200 / 3 for n in hosts.values()
        )

    async def even() -> bool:
        return balanced(Counter(r.host for r in (await records(client)).values()))

    await wait_until(even, timeout_s=15, what="an even spread")
    details = await asyncio.gather(*(client.get_worker(w) for w in worker_ids))
    spread = Counter(d.diagnostics.host for d in details)  # what each Worker's detail says
    assert balanced(spread), spread

    accepted = await asyncio.gather(
        *(client.send_input(w, SendInput(text=f"hello {i}")) for i, w in enumerate(worker_ids))
    )
    expected = {w: {a.input_id} for w, a in zip(worker_ids, accepted, strict=True)}
    seen = await wait_finished(client, expected)
    for worker_id, events in seen.items():
        assert finished_counts(events) == Counter(expected[worker_id])


async def test_kill_9_moves_workers_and_answers_every_input_once(
    fleet: Fleet, client: Runtime
) -> None:
    names = ["m1", "m2", "m3"]
    for name in names:
        fleet.start(name, echo_delay_ms="20")
    await wait_members(client, names)
    worker_ids = await create_workers(client, 30)
    await wait_hosted(client, worker_ids)
    expected: dict[str, set[str]] = {w: set() for w in worker_ids}
    for round_ in range(3):
        accepted = await asyncio.gather(
            *(
                client.send_input(
                    w,
                    SendInput(
                        text=f"round {round_} of a reply with several words to stream",
                        strategy=Strategy.ENQUEUE,
                    ),
                )
                for w in worker_ids
            )
        )
        for worker_id, answer in zip(worker_ids, accepted, strict=True):
            expected[worker_id].add(answer.input_id)

    before = await records(client)
    victim = fleet.members["m1"]
    victims = {w: r.epoch for w, r in before.items() if r.host == "m1"}
    assert victims

    async def streaming() -> bool:
        events = await all_events(client, next(iter(victims)))
        return any(e.type == "text_delta" for e in events)

    await wait_until(streaming, timeout_s=10, what="answers streaming on the victim")
    victim.signal(signal.SIGKILL)
    killed_at = monotonic()
    assert victim.wait_exit() == -signal.SIGKILL

    async def rehosted() -> bool:
        now = await records(client)
        return all(
            now[w].host not in (None, "m1") and now[w].epoch > epoch for w, epoch in victims.items()
        )

    await wait_until(rehosted, timeout_s=LEASE_TTL_MS / 1000 + 2, what="the victim's workers moved")
    takeover_s = monotonic() - killed_at
    print(f"kill -9 takeover of {len(victims)} workers: {takeover_s:.2f}s")

    seen = await wait_finished(client, expected, timeout_s=40)
    for worker_id, events in seen.items():
        assert finished_counts(events) == Counter(expected[worker_id]), worker_id
    details = await asyncio.gather(*(client.get_worker(w) for w in victims))
    assert all(d.diagnostics.host in ("m2", "m3") for d in details)
    # The answers the kill cut short start again side by side on both survivors, not one
    # after another (a first loss does not make an input run alone).
    # (Run alone, at most one per survivor would be in flight at once.)
    restarted = _restarted_runs({w: seen[w] for w in victims})
    assert _most_at_once(restarted) > 2, restarted


def _restarted_runs(events_by_worker: dict[str, list[Event]]) -> list[tuple[float, float]]:
    """(start, end) of every attempt 2, from its run_started and its run_finished."""
    spans = []
    for events in events_by_worker.values():
        for start in (e for e in of_type(events, RunStarted) if e.attempt == 2):
            (end,) = of_type(events, RunFinished, start.input_id)
            spans.append((start.ts, end.ts))
    return spans


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


async def test_sigstop_past_the_lease_is_fenced(fleet: Fleet, client: Runtime) -> None:
    victim = fleet.start("m1", provider="chaos")
    await wait_members(client, ["m1"])
    (worker_id,) = await create_workers(client, 1)
    await wait_hosted(client, [worker_id])
    fleet.start("m2", provider="chaos")
    await wait_members(client, ["m1", "m2"])

    accepted = await client.send_input(
        worker_id, SendInput(text="/slow one two three four five six seven eight")
    )

    async def first_delta() -> bool:
        events = await all_events(client, worker_id)
        return any(e.type == "text_delta" and e.input_id == accepted.input_id for e in events)

    await wait_until(first_delta, timeout_s=10, what="the first delta of the slow run")
    epoch = (await records(client))[worker_id].epoch
    victim.signal(signal.SIGSTOP)
    try:

        async def taken_over() -> bool:
            record = (await records(client))[worker_id]
            return record.host == "m2" and record.epoch > epoch

        await wait_until(taken_over, timeout_s=10, what="m2 taking the worker over")
        seen_before = await heartbeat_of(client, "m1")
    finally:
        victim.signal(signal.SIGCONT)

    async def resumed() -> bool:
        return await heartbeat_of(client, "m1") != seen_before

    await wait_until(resumed, timeout_s=10, what="the resumed member's heartbeat")
    seen = await wait_finished(client, {worker_id: {accepted.input_id}})
    events = seen[worker_id]
    assert finished_counts(events)[accepted.input_id] == 1
    starts = of_type(events, RunStarted, accepted.input_id)
    assert [e.attempt for e in starts] == [1, 2]
    first_run, second_start = starts[0].run_id, events.index(starts[1])
    late = [e for e in events[second_start:] if e.run_id == first_run]
    assert late == [], "the paused member wrote after the takeover"
    (finished,) = of_type(events, RunFinished, accepted.input_id)
    assert finished.run_id == starts[1].run_id and finished.result == "finished"
    assert victim.alive


async def test_sigterm_hands_workers_over_within_a_second(fleet: Fleet, client: Runtime) -> None:
    victim = fleet.start("m1", echo_delay_ms="10")
    fleet.start("m2", echo_delay_ms="10")
    await wait_members(client, ["m1", "m2"])
    worker_ids = await create_workers(client, 20)
    await wait_hosted(client, worker_ids)
    accepted = await asyncio.gather(
        *(client.send_input(w, SendInput(text="a short answer")) for w in worker_ids)
    )
    victims = {w for w, r in (await records(client)).items() if r.host == "m1"}
    assert victims
    victim.signal(signal.SIGTERM)
    stopped_at = monotonic()

    async def moved() -> bool:
        now = await records(client)
        return all(now[w].host == "m2" for w in victims)

    await wait_until(moved, timeout_s=1.0, what="m1's workers hosted by m2")
    print(f"SIGTERM handover of {len(victims)} workers: {monotonic() - stopped_at:.2f}s")
    assert victim.wait_exit() == 0
    expected = {w: {a.input_id} for w, a in zip(worker_ids, accepted, strict=True)}
    seen = await wait_finished(client, expected)
    for worker_id, events in seen.items():
        assert finished_counts(events) == Counter(expected[worker_id])
    assert "m1" not in {m.member_id for m in await client.members()}
