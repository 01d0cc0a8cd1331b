"""The reference model of a Worker's life: plain Python, no I/O, no cursors of its own.

It says what every `Store` must answer and write for each step (tests/model/test_worker_life.py
checks each backend against it). Cursors are the stores' business: the model keeps the events
and transcript entries in order, and learns each one's cursor from the store under test after
the step that wrote it, so it can say which cursor a reply must carry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runtime_worker.store.bounds import DEDUPE_WINDOW
from shared.models import RunResult, Strategy, WorkerState

LIVE = {WorkerState.PENDING, WorkerState.IDLE, WorkerState.RUNNING}
NOTICES = {
    RunResult.CANCELLED: "The answer was cancelled.",
    RunResult.FAILED: "The answer failed.",
    RunResult.TIMED_OUT: "The answer timed out.",
}


class Refused(Exception):
    """The step must fail with the store error named `code`, changing nothing."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Entry:
    """One event or transcript entry: its fields as the wire shows them (without cursor and
    ts), and its cursor once the store under test told it."""

    fields: dict[str, Any]
    cursor: str | None = None


@dataclass(frozen=True)
class Input:
    seq: int
    input_id: str
    text: str
    ts: float


@dataclass
class Known:
    seq: int
    cursor_of: int  # index of the event before the user_message (-1: none, cursor "0")
    text: str


@dataclass
class Taken:
    """A run a member took: what it needs to write the run's deltas and finish it."""

    item: Input
    run_id: str
    epoch: int
    attempt: int
    cancelled: bool
    history: list[tuple[str, str]]


@dataclass
class Worker:
    worker_id: str
    profile: str
    transcript_maxlen: int
    state: WorkerState = WorkerState.PENDING
    epoch: int = 0
    host: str | None = None
    holder: str | None = None  # the member holding the lease
    short_lease: bool = False  # held with a lease that expires at once
    next_seq: int = 0
    done_seq: int = 0
    cancel_upto: int = 0
    run_seq: int = 0
    run_attempt: int = 0
    run_id: str | None = None
    run_input_id: str | None = None
    run_started_at: float | None = None  # the current attempt's start: its final entry keeps it
    run_event: int | None = None  # index of the current run's run_started event
    inputs: list[Input] = field(default_factory=list)  # accepted and not acknowledged
    known: dict[str, Known] = field(default_factory=dict)
    known_old: dict[str, Known] = field(default_factory=dict)
    events: list[Entry] = field(default_factory=list)  # every event ever written, in order
    transcript: list[Entry] = field(default_factory=list)
    usage: dict[str, Any] = field(
        default_factory=lambda: {
            "input_tokens": 0,
            "output_tokens": 0,
            "runs": 0,
            "runs_by_result": {},
            "errors_by_code": {},
            "last_error": None,
        }
    )

    @property
    def queue_depth(self) -> int:
        return self.next_seq - self.done_seq

    # -- helpers ---------------------------------------------------------------------------------

    def emit(self, kind: str, **fields: Any) -> int:
        body = {"v": 1, "worker_id": self.worker_id, "type": kind}
        body.update({name: value for name, value in fields.items() if value is not None})
        self.events.append(Entry(body))
        return len(self.events) - 1

    def note(self, role: str, text: str, **fields: Any) -> None:
        body = {"role": role, "text": text}
        body.update({name: value for name, value in fields.items() if value is not None})
        self.transcript.append(Entry(body))

    def set_state(self, state: WorkerState) -> None:
        if self.state is not state:
            self.state = state
            self.emit("state_changed", state=state.value)

    def retained_events(self, maxlen: int) -> list[Entry]:
        return self.events[-maxlen:]

    def retained_transcript(self) -> list[Entry]:
        return self.transcript[-self.transcript_maxlen :]

    def fence(self, epoch: int, run_id: str | None = None) -> None:
        """The epoch is the Worker's and (a run's writes) the run is its current one."""
        if epoch != self.epoch or (run_id is not None and run_id != self.run_id):
            raise Refused("lease_lost")


class Model:
    """One runtime's Workers, as every store must keep them."""

    def __init__(self, events_maxlen: int, defaults: dict[str, Strategy]) -> None:
        self.events_maxlen = events_maxlen
        self.defaults = defaults
        self.workers: dict[str, Worker] = {}

    def create(self, worker_id: str, profile: str, transcript_maxlen: int) -> Worker:
        worker = Worker(worker_id, profile, transcript_maxlen)
        worker.emit("state_changed", state=WorkerState.PENDING.value)
        self.workers[worker_id] = worker
        return worker

    # -- the input path --------------------------------------------------------------------------

    def submit(
        self,
        w: Worker,
        input_id: str,
        text: str,
        strategy: Strategy | None,
        ts: float,
        max_queued: int | None = None,
    ) -> tuple[int, int, bool]:
        """(seq, index of the event the answer's cursor names or -1, duplicate)."""
        if strategy is None:
            strategy = self.defaults[w.profile]
        if w.state not in LIVE:
            raise Refused("worker_stopped")
        known = w.known.get(input_id) or w.known_old.get(input_id)
        if known is not None:
            if known.text != text:
                raise Refused("input_id_conflict")
            return known.seq, known.cursor_of, True
        if strategy is Strategy.REJECT and w.queue_depth > 0:
            raise Refused("worker_busy")
        if max_queued is not None and w.queue_depth >= max_queued:
            raise Refused("rate_limited")  # the queue bound: checked after dedupe and busy
        if strategy is Strategy.INTERRUPT:
            w.cancel_upto = w.next_seq
        w.next_seq += 1
        cursor_of = len(w.events) - 1
        w.inputs.append(Input(w.next_seq, input_id, text, ts))
        w.emit("user_message", input_id=input_id, text=text)
        if len(w.known) >= DEDUPE_WINDOW:
            w.known_old, w.known = w.known, {}
        w.known[input_id] = Known(w.next_seq, cursor_of, text)
        return w.next_seq, cursor_of, False

    def cancel(self, w: Worker) -> bool:
        if w.queue_depth == 0:
            return False
        if w.cancel_upto <= w.done_seq:
            w.cancel_upto = w.done_seq + 1
        return True

    def stop(self, w: Worker) -> None:
        if w.state in LIVE:
            w.cancel_upto = w.next_seq
            w.set_state(WorkerState.STOPPING if w.queue_depth else WorkerState.STOPPED)

    # -- leases ----------------------------------------------------------------------------------

    def acquire(self, w: Worker, member: str, short: bool) -> int | None:
        """None when the lease is held (and not expired) or the Worker has ended."""
        held = w.holder is not None and not w.short_lease
        if held or w.state in (WorkerState.STOPPED, WorkerState.FAILED):
            return None
        w.epoch += 1
        w.holder, w.short_lease, w.host = member, short, member
        if w.state is WorkerState.PENDING:
            w.set_state(WorkerState.IDLE)
        return w.epoch

    def renew(self, w: Worker, member: str, epoch: int) -> bool:
        return w.holder == member and w.epoch == epoch

    def release(self, w: Worker, member: str, epoch: int) -> None:
        if w.epoch == epoch and w.holder in (None, member):
            w.holder = None
            w.host = None

    # -- a host's run ----------------------------------------------------------------------------

    def take(
        self, w: Worker, member: str, epoch: int, run_id: str, history: int, ts: float
    ) -> Taken | None:
        """Refused unless `member` holds the lease now (a lapsed one is not held)."""
        w.fence(epoch)
        if w.holder != member or w.short_lease:
            raise Refused("lease_lost")
        if not w.inputs:
            return None
        item = w.inputs[0]
        first = w.run_seq != item.seq
        w.run_attempt = 1 if first else w.run_attempt + 1
        w.run_seq, w.run_id, w.run_input_id = item.seq, run_id, item.input_id
        w.run_started_at = ts
        if first:
            w.note("user", item.text, input_id=item.input_id, run_id=run_id)
        if w.state is WorkerState.IDLE:
            w.set_state(WorkerState.RUNNING)
        w.run_event = w.emit(
            "run_started", run_id=run_id, input_id=item.input_id, attempt=w.run_attempt
        )
        recent = w.retained_transcript()[-history:] if history > 0 else []
        lines = [(entry.fields["role"], entry.fields["text"]) for entry in recent]
        return Taken(item, run_id, epoch, w.run_attempt, item.seq <= w.cancel_upto, lines)

    def deltas(self, w: Worker, taken: Taken, texts: list[str]) -> None:
        w.fence(taken.epoch, taken.run_id)
        for text in texts:
            w.emit("text_delta", run_id=taken.run_id, input_id=taken.item.input_id, text=text)

    def finish(
        self,
        w: Worker,
        taken: Taken,
        result: RunResult,
        text: str,
        tokens: tuple[int, int],
        deltas: list[str],
    ) -> bool:
        """The run's end; answers whether more inputs wait."""
        w.fence(taken.epoch, taken.run_id)
        ids = {"run_id": taken.run_id, "input_id": taken.item.input_id}
        for delta in deltas:
            w.emit("text_delta", **ids, text=delta)
        error = "provider_error" if result is RunResult.FAILED else None
        if error:
            w.emit("error", **ids, code=error, message="boom", retryable=False)
        w.emit("text_done", **ids, text=text)
        w.emit("usage", **ids, input_tokens=tokens[0], output_tokens=tokens[1])
        w.emit("run_finished", **ids, result=result.value)
        run = {
            "result": result.value,
            "attempt": w.run_attempt,
            "started_at": w.run_started_at,
            "usage": {"input_tokens": tokens[0], "output_tokens": tokens[1]},
        }
        if text or result is RunResult.FINISHED:
            w.note("assistant", text, **ids, **run)
        else:
            notice = NOTICES[result] + (" boom" if error else "")
            w.note("notice", notice, **ids, **run)
        usage = w.usage
        usage["input_tokens"] += tokens[0]
        usage["output_tokens"] += tokens[1]
        usage["runs"] += 1
        usage["runs_by_result"][result.value] = usage["runs_by_result"].get(result.value, 0) + 1
        if error:
            usage["last_error"] = error
            usage["errors_by_code"][error] = usage["errors_by_code"].get(error, 0) + 1
        w.done_seq = taken.item.seq
        w.run_id = w.run_input_id = w.run_started_at = None
        w.run_event = None
        if w.inputs and w.inputs[0].seq == taken.item.seq:
            w.inputs.pop(0)
        if w.state is WorkerState.STOPPING:
            w.set_state(WorkerState.STOPPING if w.queue_depth else WorkerState.STOPPED)
        else:
            w.set_state(WorkerState.RUNNING if w.queue_depth else WorkerState.IDLE)
        return w.queue_depth > 0
