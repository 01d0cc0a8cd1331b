"""`TurnGate`: a solo turn (a suspect input's attempt) waits for the turns in flight, and no
turn starts while it waits or runs; ordinary turns run side by side."""

from __future__ import annotations

import asyncio

from runtime_worker._turns import TurnGate

WATCHDOG_S = 5


async def _hold(gate: TurnGate, solo: bool, entered: asyncio.Event, leave: asyncio.Event) -> None:
    async with gate.turn(solo=solo):
        entered.set()
        await leave.wait()


async def _stuck(event: asyncio.Event) -> bool:
    """Whether `event` stays unset while every other task runs as far as it can."""
    for _ in range(20):
        await asyncio.sleep(0)  # settle-ok: let every ready task run; the event must stay unset
    return not event.is_set()


async def test_ordinary_turns_run_together() -> None:
    gate = TurnGate()
    async with asyncio.timeout(WATCHDOG_S):
        async with gate.turn(), gate.turn():
            assert gate.in_flight == 2
    assert gate.in_flight == 0


async def test_a_solo_turn_waits_for_the_running_ones_and_holds_new_ones_back() -> None:
    gate = TurnGate()
    first_in, first_out = asyncio.Event(), asyncio.Event()
    solo_in, solo_out = asyncio.Event(), asyncio.Event()
    late_in, late_out = asyncio.Event(), asyncio.Event()
    async with asyncio.timeout(WATCHDOG_S):
        first = asyncio.ensure_future(_hold(gate, False, first_in, first_out))
        await first_in.wait()
        solo = asyncio.ensure_future(_hold(gate, True, solo_in, solo_out))
        assert await _stuck(solo_in)  # a turn is in flight
        late = asyncio.ensure_future(_hold(gate, False, late_in, late_out))
        assert await _stuck(late_in)  # a solo turn waits: nothing new starts
        first_out.set()
        await solo_in.wait()
        assert gate.in_flight == 1
        assert await _stuck(late_in)  # nothing starts while the solo turn runs
        solo_out.set()
        await late_in.wait()
        late_out.set()
        await asyncio.gather(first, solo, late)
    assert gate.in_flight == 0


async def test_a_cancelled_solo_wait_holds_nobody_up() -> None:
    gate = TurnGate()
    first_in, first_out = asyncio.Event(), asyncio.Event()
    solo_in, late_in, late_out = asyncio.Event(), asyncio.Event(), asyncio.Event()
    async with asyncio.timeout(WATCHDOG_S):
        first = asyncio.ensure_future(_hold(gate, False, first_in, first_out))
        await first_in.wait()
        solo = asyncio.ensure_future(_hold(gate, True, solo_in, asyncio.Event()))
        late = asyncio.ensure_future(_hold(gate, False, late_in, late_out))
        assert await _stuck(late_in)
        solo.cancel()
        await asyncio.wait([solo])
        await late_in.wait()  # the waiting turn starts at once
        first_out.set()
        late_out.set()
        await asyncio.gather(first, late)
    assert not solo_in.is_set()
