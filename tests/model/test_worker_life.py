"""Every store backend against one reference model of a Worker's life (tests/model/reference.py).

Hypothesis drives random sequences of create, submit (each strategy, reused input ids with the
same or another text), cancel, stop, acquire / renew / release, lease loss and takeover (a
lease that expires at once, then another member takes the Worker: epoch fencing), take, deltas,
finish (each result), writes of runs finished or taken again since (the run fence), reads by
cursor (old, trimmed, ahead, malformed) and transcript pages, and compares every answer, error
and the whole event log, transcript and record after each step.

Bounded for CI: `YOI_MODEL_EXAMPLES` (default 60) examples of `YOI_MODEL_STEPS` (default 40)
steps per backend; raise both locally to search longer.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from runtime_worker.store.base import QueuedInput, RunOutcome, Store, WorkerRecord
from shared.errors import LeaseLost, YoiError
from shared.events import TextDelta
from shared.ids import new_id
from shared.models import RunResult, Strategy
from shared.settings import Settings
from tests.contract.backends import BACKENDS, Backend, Where
from tests.helpers import wait_until
from tests.model.reference import Entry, Model, Refused, Taken, Worker

T = TypeVar("T")

EXAMPLES = int(os.environ.get("YOI_MODEL_EXAMPLES", "60"))
STEPS = int(os.environ.get("YOI_MODEL_STEPS", "40"))
EVENTS_MAXLEN = 12  # the fewest allowed is 10: a long example trims often
DEFAULTS = {"assistant": Strategy.REJECT, "companion": Strategy.ENQUEUE}
MAX_QUEUED = 3  # small, so that examples reach the bound (YOI_MAX_QUEUED_INPUTS)
MEMBERS = ("m1", "m2")
LONG_TTL_MS = 60_000
SHORT_TTL_MS = 1  # a lease lost at once: the next acquire by anyone takes over

picks = st.integers(min_value=0, max_value=1)
members = st.sampled_from(MEMBERS)
strategies = st.sampled_from([None, Strategy.REJECT, Strategy.ENQUEUE, Strategy.INTERRUPT])
input_ids = st.sampled_from(["in-a", "in-b", "in-c", "fresh"])
texts = st.sampled_from(["hello", "other"])
results = st.sampled_from(list(RunResult))
positions = st.one_of(
    st.sampled_from(["none", "zero", "ahead", "malformed"]), st.integers(min_value=0)
)
delta_texts = st.lists(st.sampled_from(["a", "b c"]), max_size=2)


def _cursor(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


def _before(cursor: tuple[int, int]) -> tuple[int, int]:
    """The stream id right before `cursor` (the test's own, not the stores')."""
    ms, seq = cursor
    if seq:
        return ms, seq - 1
    return (ms - 1, 2**64 - 1) if ms else (0, 0)


def _code(exc: BaseException) -> str:
    if isinstance(exc, LeaseLost):
        return "lease_lost"
    if isinstance(exc, YoiError):
        return exc.code
    raise exc


class WorkerLife(RuleBasedStateMachine):
    backend: ClassVar[Backend]
    redis_url: ClassVar[str]

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.where = Where(self.redis_url, "t" + uuid.uuid4().hex[:12])
        self.settings = Settings(events_maxlen=EVENTS_MAXLEN, retention_s=3600)
        self.store: Store = self.run(self._make())
        self.model = Model(EVENTS_MAXLEN, DEFAULTS)
        self.ids: list[str] = []
        self.epochs: dict[tuple[str, str], int] = {}  # (worker, member) -> the epoch it got
        self.taken: dict[tuple[str, str], tuple[Taken, QueuedInput]] = {}
        # Runs finished or taken again since, per Worker: their writes must all be refused.
        self.ended: dict[str, list[tuple[Taken, QueuedInput]]] = {}
        self.clock = 1_000.0

    async def _make(self) -> Store:
        return self.backend.make(self.settings, self.where)

    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        try:
            self.run(self.store.aclose())
            self.run(self.backend.cleanup(self.where))
        finally:
            self.loop.close()

    def both(self, model_step: Callable[[], Any], store_step: Callable[[], Awaitable[Any]]) -> Any:
        """Run one step on the model and the store: the same error code, or both answers."""
        try:
            expected = model_step()
            refused = None
        except Refused as exc:
            refused = exc.code
        try:
            got = self.run(store_step())
            failed = None
        except Exception as exc:
            failed = _code(exc)
        assert failed == refused, f"store answered {failed!r}, the model {refused!r}"
        return None if refused else (expected, got)

    def worker(self, pick: int) -> Worker:
        return self.model.workers[self.ids[pick % len(self.ids)]]

    def tick(self) -> float:
        self.clock += 1.0
        return self.clock

    # -- workers ---------------------------------------------------------------------------------

    @initialize(profile=st.sampled_from(sorted(DEFAULTS)), maxlen=st.sampled_from([4, 6]))
    def first_worker(self, profile: str, maxlen: int) -> None:
        self.create(profile, maxlen)

    @rule(profile=st.sampled_from(sorted(DEFAULTS)), maxlen=st.sampled_from([4, 6]))
    def create(self, profile: str, maxlen: int) -> None:
        if len(self.ids) >= 2:
            return
        record = WorkerRecord(
            worker_id=new_id(),
            display_name="w",
            profile=profile,
            created_at=self.tick(),
            transcript_maxlen=maxlen,
        )
        created = self.run(self.store.create(record)).record
        self.model.create(created.worker_id, profile, maxlen)
        self.ids.append(created.worker_id)

    @rule(pick=picks, input_id=input_ids, text=texts, strategy=strategies)
    def submit(self, pick: int, input_id: str, text: str, strategy: Strategy | None) -> None:
        w = self.worker(pick)
        if input_id == "fresh":
            input_id = new_id()
        ts = self.tick()
        answers = self.both(
            lambda: self.model.submit(w, input_id, text, strategy, ts, MAX_QUEUED),
            lambda: self.store.submit_input(
                w.worker_id,
                text,
                input_id,
                strategy,
                ts,
                default_strategies=DEFAULTS,
                max_queued=MAX_QUEUED,
            ),
        )
        if answers is None:
            return
        (seq, cursor_of, duplicate), got = answers
        expected_cursor = "0" if cursor_of < 0 else w.events[cursor_of].cursor
        assert expected_cursor is not None
        assert (got.input_id, got.seq, got.duplicate, got.cursor, got.host) == (
            input_id,
            seq,
            duplicate,
            expected_cursor,
            w.host,
        )

    @rule(pick=picks)
    def cancel(self, pick: int) -> None:
        w = self.worker(pick)
        answers = self.both(lambda: self.model.cancel(w), lambda: self.store.cancel(w.worker_id))
        assert answers is not None
        cancelled, got = answers
        assert (got.cancelled, got.state, got.host) == (cancelled, w.state, w.host)

    @rule(pick=picks)
    def stop(self, pick: int) -> None:
        w = self.worker(pick)
        answers = self.both(
            lambda: self.model.stop(w), lambda: self.store.request_stop(w.worker_id)
        )
        assert answers is not None
        assert answers[1].state is w.state

    @rule(pick=picks)
    def is_cancelled(self, pick: int) -> None:
        w = self.worker(pick)
        for seq in range(1, w.next_seq + 1):
            got = self.run(self.store.is_cancelled(w.worker_id, seq))
            assert got == (seq <= w.cancel_upto)

    # -- leases ----------------------------------------------------------------------------------

    @rule(pick=picks, member=members, short=st.booleans())
    def acquire(self, pick: int, member: str, short: bool) -> None:
        w = self.worker(pick)
        if w.holder is not None and w.short_lease:
            return  # whether it expired yet is the clock's business: see `takeover`
        ttl_ms = SHORT_TTL_MS if short else LONG_TTL_MS
        expected = self.model.acquire(w, member, short)
        got = self.run(self.store.acquire(w.worker_id, member, ttl_ms))
        assert got == expected
        if got is not None:
            self.epochs[(w.worker_id, member)] = got
        if got is not None and short:
            # The model's short lease has lapsed already: wait until the store's has too (a
            # renewal of a lapsed lease is refused and changes nothing; of a live one, it keeps
            # the 1 ms).
            leases = {w.worker_id: got}

            async def lapsed() -> bool:
                renewed = await self.store.renew(member, leases, SHORT_TTL_MS)
                return not renewed[w.worker_id]

            self.run(wait_until(lapsed, timeout_s=5, what="the short lease to lapse"))

    @rule(pick=picks, member=members)
    def takeover(self, pick: int, member: str) -> None:
        """The holder's lease ran out (it was taken for 1 ms): `member` takes the Worker once
        the store sees it expired; the old holder's epoch is fenced off from then on."""
        w = self.worker(pick)
        if w.holder is None or not w.short_lease or w.state.value in ("stopped", "failed"):
            return
        got: list[int] = []

        async def taken() -> bool:
            epoch = await self.store.acquire(w.worker_id, member, LONG_TTL_MS)
            if epoch is not None:
                got.append(epoch)
            return bool(got)

        self.run(wait_until(taken, timeout_s=5, what="the short lease to expire"))
        expected = self.model.acquire(w, member, short=False)
        assert got == [expected]
        self.epochs[(w.worker_id, member)] = got[0]

    @rule(pick=picks, member=members)
    def renew(self, pick: int, member: str) -> None:
        w = self.worker(pick)
        epoch = self.epochs.get((w.worker_id, member))
        if epoch is None or (w.short_lease and w.holder == member):
            return
        got = self.run(self.store.renew(member, {w.worker_id: epoch}, LONG_TTL_MS))
        assert got == {w.worker_id: self.model.renew(w, member, epoch)}

    @rule(pick=picks, member=members)
    def release(self, pick: int, member: str) -> None:
        w = self.worker(pick)
        epoch = self.epochs.get((w.worker_id, member))
        if epoch is None:
            return
        self.model.release(w, member, epoch)
        self.run(self.store.release_many({w.worker_id: epoch}, member))

    # -- a host's run ----------------------------------------------------------------------------

    @rule(pick=picks, member=members, history=st.integers(min_value=0, max_value=3))
    def take(self, pick: int, member: str, history: int) -> None:
        w = self.worker(pick)
        epoch = self.epochs.get((w.worker_id, member))
        if epoch is None:
            return
        run_id, ts = new_id(), self.tick()
        answers = self.both(
            lambda: self.model.take(w, member, epoch, run_id, history, ts),
            lambda: self.store.take_run(w.worker_id, member, epoch, run_id, ts, history),
        )
        if answers is None:
            return
        expected, got = answers
        if expected is None:
            assert got is None
            return
        assert got is not None
        item = expected.item
        assert (got.item.seq, got.item.input_id, got.item.text, got.item.ts) == (
            item.seq,
            item.input_id,
            item.text,
            item.ts,
        )
        assert (got.claim.run_id, got.claim.attempt, got.claim.cancelled) == (
            run_id,
            expected.attempt,
            expected.cancelled,
        )
        assert got.history == expected.history
        replaced = self.taken.get((w.worker_id, member))
        if replaced is not None:
            self.ended.setdefault(w.worker_id, []).append(replaced)
        self.taken[(w.worker_id, member)] = (expected, got.item)

    @rule(pick=picks, member=members, parts=delta_texts)
    def deltas(self, pick: int, member: str, parts: list[str]) -> None:
        w = self.worker(pick)
        found = self.taken.get((w.worker_id, member))
        if found is None or not parts:
            return
        taken, _ = found
        events = [
            TextDelta(
                worker_id=w.worker_id,
                ts=self.tick(),
                run_id=taken.run_id,
                input_id=taken.item.input_id,
                text=part,
            )
            for part in parts
        ]
        self.both(
            lambda: self.model.deltas(w, taken, parts),
            lambda: self.store.append_events(w.worker_id, taken.epoch, events, run_id=taken.run_id),
        )

    @rule(
        pick=picks,
        member=members,
        result=results,
        text=st.sampled_from(["", "answer"]),
        tail=delta_texts,
    )
    def finish(self, pick: int, member: str, result: RunResult, text: str, tail: list[str]) -> None:
        w = self.worker(pick)
        found = self.taken.pop((w.worker_id, member), None)
        if found is None:
            return
        self.ended.setdefault(w.worker_id, []).append(found)
        taken, item = found
        ts = self.tick()
        ids = {"worker_id": w.worker_id, "run_id": taken.run_id, "input_id": item.input_id}
        outcome = RunOutcome(
            result,
            text,
            3,
            2,
            error_code="provider_error" if result is RunResult.FAILED else None,
            error_message="boom" if result is RunResult.FAILED else None,
            deltas=tuple(TextDelta(**ids, ts=ts, text=part) for part in tail),
        )
        answers = self.both(
            lambda: self.model.finish(w, taken, result, text, (3, 2), tail),
            lambda: self.store.finish_run(
                w.worker_id, taken.epoch, item, outcome, ts, run_id=taken.run_id
            ),
        )
        if answers is not None:
            more, got = answers
            assert got == more

    @rule(pick=picks, which=st.integers(min_value=0, max_value=7))
    def stale_run_writes(self, pick: int, which: int) -> None:
        """A run finished or taken again since (by any member, at any epoch) appends and
        finishes: the model refuses unless it is the Worker's current run, and so must the
        store."""
        w = self.worker(pick)
        ended = self.ended.get(w.worker_id)
        if not ended:
            return
        taken, item = ended[which % len(ended)]
        ids = {"worker_id": w.worker_id, "run_id": taken.run_id, "input_id": item.input_id}
        delta = TextDelta(**ids, ts=self.tick(), text="stale")
        self.both(
            lambda: self.model.deltas(w, taken, ["stale"]),
            lambda: self.store.append_events(
                w.worker_id, taken.epoch, [delta], run_id=taken.run_id
            ),
        )
        outcome = RunOutcome(RunResult.FINISHED, "stale")
        self.both(
            lambda: self.model.finish(w, taken, RunResult.FINISHED, "stale", (0, 0), []),
            lambda: self.store.finish_run(
                w.worker_id, taken.epoch, item, outcome, self.tick(), run_id=taken.run_id
            ),
        )

    # -- readers ---------------------------------------------------------------------------------

    def _after(self, w: Worker, position: str | int) -> str | None:
        """A cursor for `position`: an event's (trimmed or not), "0", one ahead of the end, a
        malformed one, or None (from the oldest retained)."""
        last = w.events[-1].cursor
        assert last is not None
        if position == "none":
            return None
        if position == "zero":
            return "0"
        if position == "ahead":
            ms, seq = _cursor(last)
            return f"{ms}-{seq + 1}"
        if position == "malformed":
            return "12-x"
        assert isinstance(position, int)
        return w.events[position % len(w.events)].cursor

    @rule(pick=picks, position=positions, limit=st.integers(1, 15), wait=st.booleans())
    def read_events(self, pick: int, position: str | int, limit: int, wait: bool) -> None:
        w = self.worker(pick)
        after = self._after(w, position)
        if after is None and (position != "none" or wait):
            return  # an event trimmed in the step that wrote it: no cursor was ever seen
        retained = w.retained_events(EVENTS_MAXLEN)
        code: str | None = None
        expected: list[Entry] = retained[:limit]
        if after == "12-x":
            code = "invalid_input"
        elif after is not None:
            at = _cursor(after)
            first, newest = (_cursor(str(retained[i].cursor)) for i in (0, -1))
            if at > newest:
                code = "invalid_input"
            elif len(w.events) > EVENTS_MAXLEN and at < _before(first):
                code = "cursor_expired"
            expected = [e for e in retained if _cursor(str(e.cursor)) > at][:limit]
        try:
            if wait:
                assert after is not None
                got = self.run(self.store.tail_events(w.worker_id, after, limit, 0))
            else:
                got = self.run(self.store.read_events(w.worker_id, after, limit))
        except YoiError as exc:
            assert exc.code == code, f"{exc.code} for {after}, expected {code}"
            if code == "cursor_expired":
                oldest = exc.details["oldest_cursor"]
                assert _cursor(oldest) == _before(_cursor(str(retained[0].cursor)))
            return
        assert code is None, f"expected {code} for {after}"
        assert [e.cursor for e in got] == [e.cursor for e in expected]

    @rule(pick=picks, position=positions, limit=st.integers(1, 7))
    def transcript(self, pick: int, position: str | int, limit: int) -> None:
        w = self.worker(pick)
        retained = w.retained_transcript()
        if position in ("zero", "ahead"):
            before: str | None = "0" if position == "zero" else "0-0"
        elif position == "malformed":
            before = "12-x"
        elif position == "none" or not retained:
            before = None
        else:
            assert isinstance(position, int)
            before = retained[position % len(retained)].cursor
        try:
            page = self.run(self.store.read_transcript(w.worker_id, limit, before))
        except YoiError as exc:
            assert before == "12-x" and exc.code == "invalid_input"
            return
        assert before != "12-x"
        older = retained
        if before is not None:
            older = [e for e in retained if _cursor(str(e.cursor)) < _cursor(before)]
        expected = older[-limit:] if older else []
        assert [e.cursor for e in page.entries] == [e.cursor for e in expected]
        more = bool(expected) and len(older) > len(expected)
        assert page.next_before == (expected[0].cursor if more else None)

    # -- after every step: the whole state --------------------------------------------------------

    @invariant()
    def same_state(self) -> None:
        for worker_id in self.ids:
            w = self.model.workers[worker_id]
            self._same_events(w)
            self._same_transcript(w)
            self._same_runs(w)
            self._same_record(w)

    def _same_events(self, w: Worker) -> None:
        got = self.run(self.store.read_events(w.worker_id, None, EVENTS_MAXLEN + 5))
        expected = w.retained_events(EVENTS_MAXLEN)
        dumped = [
            e.model_dump(mode="json", exclude={"cursor", "ts"}, exclude_none=True) for e in got
        ]
        assert dumped == [e.fields for e in expected]
        cursors = [_cursor(e.cursor) for e in got]
        assert cursors == sorted(set(cursors)), "cursors strictly increase"
        for entry, event in zip(expected, got, strict=True):
            assert entry.cursor in (None, event.cursor)
            entry.cursor = event.cursor
        assert self.run(self.store.last_cursor(w.worker_id)) == got[-1].cursor

    def _same_transcript(self, w: Worker) -> None:
        page = self.run(self.store.read_transcript(w.worker_id, w.transcript_maxlen + 5, None))
        expected = w.retained_transcript()
        dumped = [
            e.model_dump(mode="json", exclude={"cursor", "ts"}, exclude_none=True)
            for e in page.entries
        ]
        assert dumped == [e.fields for e in expected]
        assert page.next_before is None
        for entry, got in zip(expected, page.entries, strict=True):
            assert entry.cursor in (None, got.cursor)
            entry.cursor = got.cursor

    def _same_runs(self, w: Worker) -> None:
        """The run log is the retained transcript's final entries, newest first."""
        page = self.run(self.store.read_runs(w.worker_id, w.transcript_maxlen + 5, None))
        expected = [e.fields for e in reversed(w.retained_transcript()) if "result" in e.fields]
        got = [(run.run_id, run.attempt, run.result, run.started_at) for _, run in page.runs]
        assert got == [
            (e["run_id"], e["attempt"], RunResult(e["result"]), e["started_at"]) for e in expected
        ]
        assert page.next_before is None

    def _same_record(self, w: Worker) -> None:
        record = self.run(self.store.get_worker(w.worker_id))
        run_cursor = None if w.run_event is None else w.events[w.run_event].cursor
        assert {
            "state": record.state,
            "host": record.host,
            "epoch": record.epoch,
            "next_seq": record.next_seq,
            "done_seq": record.done_seq,
            "cancel_upto": record.cancel_upto,
            "run_seq": record.run_seq,
            "run_attempt": record.run_attempt,
            "run_id": record.run_id,
            "run_input_id": record.run_input_id,
            "run_cursor": record.run_cursor,
            "run_started_at": record.run_started_at,
            "usage": record.usage.model_dump(),
        } == {
            "state": w.state,
            "host": w.host,
            "epoch": w.epoch,
            "next_seq": w.next_seq,
            "done_seq": w.done_seq,
            "cancel_upto": w.cancel_upto,
            "run_seq": w.run_seq,
            "run_attempt": w.run_attempt,
            "run_id": w.run_id,
            "run_input_id": w.run_input_id,
            "run_cursor": run_cursor,
            "run_started_at": w.run_started_at,
            "usage": w.usage,
        }


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_every_store_lives_the_model(backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(BACKENDS[backend].url_fixture)
    machine = type(
        f"WorkerLife_{backend}",
        (WorkerLife,),
        {"backend": BACKENDS[backend], "redis_url": url},
    )
    config = settings(
        max_examples=EXAMPLES,
        stateful_step_count=STEPS,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(machine, settings=config)
