"""The write budget of token coalescing: a fast stream costs one write per interval, a slow or
pausing one is written chunk by chunk, never held back waiting for a deadline.

Driven by a fake clock and a chunk source the test releases one item at a time, over a real
(memory) store: every expectation is about which writes happened, none about how long one took.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from runtime_worker._flusher import Flusher, WriteBudget
from runtime_worker._hosted import Hosted
from runtime_worker.profiles import Profile
from runtime_worker.providers.base import (
    ChatMessage,
    Provider,
    StreamItem,
    TextChunk,
    TurnRequest,
    UsageChunk,
)
from runtime_worker.store.base import TakenRun, WorkerRecord
from runtime_worker.store.memory import MemoryStore
from shared.ids import new_id
from shared.models import Strategy
from shared.settings import Settings
from shared.timeutil import now_s
from tests.helpers import wait_until

INTERVAL_S = 60.0  # on the fake clock: no real time ever earns a write in these tests
REQUEST = TurnRequest(messages=[ChatMessage("user", "hi")], model="m", max_output_tokens=0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Released(Provider):
    """A provider that yields exactly what the test puts in, when it puts it (None ends it)."""

    name = "released"

    def __init__(self) -> None:
        self.items: asyncio.Queue[StreamItem | None] = asyncio.Queue()

    async def stream(self, request: TurnRequest) -> AsyncIterator[StreamItem]:
        while (item := await self.items.get()) is not None:
            yield item


async def _taken(store: MemoryStore) -> tuple[str, Hosted, TakenRun]:
    record = WorkerRecord(worker_id=new_id(), display_name="w", profile="p", created_at=now_s())
    worker_id = (await store.create(record)).record.worker_id
    epoch = await store.acquire(worker_id, "m1", 0)
    assert epoch is not None
    await store.submit_input(worker_id, "hi", new_id(), Strategy.ENQUEUE, now_s())
    taken = await store.take_run(worker_id, "m1", epoch, new_id(), now_s(), 0)
    assert taken is not None
    return worker_id, Hosted(epoch=epoch, profile=Profile(name="p")), taken


class Rig:
    """A flusher pumping `Released` into a memory store, on a fake clock."""

    def __init__(self, store: MemoryStore, worker_id: str, hosted: Hosted, taken: TakenRun):
        self.store, self.worker_id, self.run_id = store, worker_id, taken.claim.run_id
        self.clock = FakeClock()
        self.provider = Released()
        self.flusher = Flusher(
            store,
            worker_id,
            hosted,
            taken.item,
            self.run_id,
            interval_s=INTERVAL_S,
            burst=3,
            clock=self.clock,
        )
        self.pumping: asyncio.Task[UsageChunk] | None = None

    def start(self) -> None:
        self.pumping = asyncio.create_task(self.flusher.pump(self.provider, REQUEST))

    async def written(self) -> list[str]:
        events = await self.store.read_events(self.worker_id, None, 1000)
        return [getattr(e, "text") for e in events if e.type == "text_delta"]  # noqa: B009

    async def send_and_see_written(self, text: str, expected: list[str]) -> None:
        await self.provider.items.put(TextChunk(text))

        async def there() -> bool:
            return await self.written() == expected

        await wait_until(there, timeout_s=5, what=f"the writes {expected}")

    async def end(self) -> str:
        """End the stream; the text the flusher left for the run's final events."""
        await self.provider.items.put(None)
        assert self.pumping is not None
        async with asyncio.timeout(5):
            await self.pumping
        return "".join(d.text for d in self.flusher.tail())


async def _rig() -> Rig:
    store = MemoryStore(Settings())
    return Rig(store, *await _taken(store))


def test_the_budget_starts_full_then_earns_one_per_interval() -> None:
    budget = WriteBudget(10.0, now=0.0, burst=3)
    for _ in range(3):  # a turn's first chunks go out as they come
        assert budget.wait_s(0.0) == 0
        budget.spend(0.0)
        budget.rested(0.0)
    assert budget.wait_s(0.0) == 10.0
    assert budget.wait_s(4.0) == 6.0
    assert budget.wait_s(10.0) == 0


def _spend_all(budget: WriteBudget, now: float) -> None:
    while budget.wait_s(now) == 0:
        budget.spend(now)
        budget.rested(now)


def test_the_budget_holds_a_burst_after_idle_time_and_no_more() -> None:
    budget = WriteBudget(10.0, now=0.0, burst=3)
    _spend_all(budget, 0.0)
    for _ in range(3):  # 100 s of idle earns 10, capped at the burst of 3
        assert budget.wait_s(100.0) == 0
        budget.spend(100.0)
        budget.rested(100.0)
    assert budget.wait_s(100.0) == 10.0


def test_time_spent_writing_earns_nothing() -> None:
    budget = WriteBudget(10.0, now=0.0, burst=3)
    budget.spend(0.0)
    budget.spend(0.0)
    budget.spend(0.0)
    budget.rested(5.0)  # a slow store: the write took half an interval
    assert budget.wait_s(10.0) == 5.0  # the refill counts from the write's end


def test_a_fast_stream_gets_the_burst_then_one_write_per_interval() -> None:
    budget = WriteBudget(10.0, now=0.0, burst=3)
    writes = 0
    for step in range(1000):  # a chunk every tenth of an interval, for 100 intervals
        now = step * 1.0
        if budget.wait_s(now) == 0:
            budget.spend(now)
            budget.rested(now)
            writes += 1
    assert writes == 3 + 99  # the burst at once, then one per interval


def test_no_interval_is_no_budget() -> None:
    budget = WriteBudget(0.0, now=0.0, burst=3)
    for _ in range(10):
        assert budget.wait_s(0.0) == 0
        budget.spend(0.0)


async def test_a_stream_slower_than_the_budget_goes_out_chunk_by_chunk() -> None:
    rig = await _rig()
    rig.start()
    sent: list[str] = []
    for word in ("one ", "two ", "three ", "four ", "five "):
        rig.clock.now += INTERVAL_S * 1.5  # each chunk comes after more than an interval
        sent.append(word)
        await rig.send_and_see_written(word, list(sent))
    assert await rig.end() == ""  # nothing was held for the end


async def test_a_turn_starts_with_a_full_budget_then_the_rest_is_held() -> None:
    rig = await _rig()
    rig.start()
    await rig.send_and_see_written("a", ["a"])  # the clock stands still: nothing is earned
    await rig.send_and_see_written("b", ["a", "b"])
    await rig.send_and_see_written("c", ["a", "b", "c"])
    for word in ("d", "e", "f"):  # the budget is spent: coalesced, not written yet
        await rig.provider.items.put(TextChunk(word))
    await rig.provider.items.put(UsageChunk(3, 6))
    assert await rig.end() == "def"  # the run's final events carry them, in one delta
    assert await rig.written() == ["a", "b", "c"]
    assert rig.flusher.counted() == UsageChunk(3, 6)


async def test_held_text_goes_out_once_the_budget_refills() -> None:
    rig = await _rig()
    rig.start()
    for written, word in enumerate(("u", "v", "x"), start=1):  # the burst of 3, at once
        await rig.send_and_see_written(word, ["u", "v", "x"][:written])
    await rig.provider.items.put(TextChunk("y"))  # the budget is spent: held
    await rig.provider.items.put(TextChunk("z"))
    rig.clock.now += INTERVAL_S  # one write earned: the next chunk takes the held text along
    await rig.send_and_see_written("!", ["u", "v", "x", "yz!"])
    assert await rig.end() == ""
