"""The `Store` boundary: every piece of Worker state, and every write a host makes, goes here.

It is split by the roles its callers play: `InputPath` (the gateway's writes: create, submit,
cancel, stop, scope), `Readers` (records, events, transcripts), `HostSide` (what a host needs:
leases, runs, wake-ups), `ScheduleStore` (a runtime's schedules); `Store` is all four. Fleet
members need more (membership, placement): `runtime_worker.store.fleet.FleetStore`.
Implementations keep one contract (tests/contract) and one reference model (tests/model):
`MemoryStore` for the embedded runtime and `RedisStore` for the fleet. Host-side writes carry
the lease `epoch` they were made under; a store refuses (raises `LeaseLost`) any write whose
epoch is not the Worker's current one, atomically with the write itself, so a paused or
partitioned host can never write after losing its lease. A run's appends and finish carry its
`run_id` too and are refused once it is not the Worker's current run (finished, or taken again
by any host): epochs can repeat after a Redis failover lost an acquisition, run ids cannot.

Inputs are numbered per Worker by `seq` (1, 2, ...). Three watermarks on the Worker record make
multitasking and cancellation cheap and atomic:

- `next_seq`: the seq of the newest accepted input (0 when none).
- `done_seq`: the seq of the newest input whose `run_finished` is written. Inputs run strictly in
  order, so everything at or below it is done. `next_seq > done_seq` means "busy".
- `cancel_upto`: every input with `seq <= cancel_upto` is cancelled: a running one is aborted, a
  queued one ends `cancelled` without calling the provider.

The values of one run (`QueuedInput`, `RunClaim`, `TakenRun`, `TakenAhead`, `RunOutcome`,
`RunLogPage`, `RunAlone`) live in `_run_values.py`; import them from here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field

from runtime_worker.store._run_values import QueuedInput as QueuedInput
from runtime_worker.store._run_values import RunAlone as RunAlone
from runtime_worker.store._run_values import RunClaim as RunClaim
from runtime_worker.store._run_values import RunLogPage as RunLogPage
from runtime_worker.store._run_values import RunOutcome as RunOutcome
from runtime_worker.store._run_values import TakenAhead as TakenAhead
from runtime_worker.store._run_values import TakenRun as TakenRun
from runtime_worker.store.schedules import ScheduleStore
from runtime_worker.store.webhooks import WebhookStore
from shared.errors import UnsupportedOperation, YoiError
from shared.events import Event
from shared.models import (
    MemberInfo,
    RunDetail,
    ScopeEntry,
    Strategy,
    TranscriptPage,
    Usage,
    WorkerState,
)

NOW_CURSOR = "now"


@dataclass
class WorkerRecord:
    """Internal record of one Worker; the wire models in `shared.models` are built from it."""

    worker_id: str
    display_name: str
    profile: str
    created_at: float
    scope: list[ScopeEntry] = field(default_factory=list)
    delegated_from: str | None = None
    state: WorkerState = WorkerState.PENDING
    host: str | None = None
    epoch: int = 0
    next_seq: int = 0
    done_seq: int = 0
    cancel_upto: int = 0
    run_seq: int = 0
    run_attempt: int = 0
    run_id: str | None = None
    run_input_id: str | None = None
    run_cursor: str | None = None
    run_started_at: float | None = None
    transcript_maxlen: int = 500
    usage: Usage = field(default_factory=Usage)
    webhook_url: str | None = None  # the Worker's own webhook (the runtime may have a default)
    webhook_last: str | None = None  # JSON `shared.webhooks.WebhookDelivery` of the newest try
    webhook_pending: dict[str, str] = field(default_factory=dict)
    """Memory and SQLite stores only: pending deliveries (id → JSON) of this Worker's runs, so
    the SQLite file keeps them with the record. The Redis store keeps them runtime-wide."""

    @property
    def queue_depth(self) -> int:
        """Inputs accepted and not yet finished, the running one included."""
        return self.next_seq - self.done_seq


@dataclass(frozen=True, slots=True)
class Listed:
    """What a Worker listing shows of one Worker."""

    worker_id: str
    display_name: str
    profile: str
    state: WorkerState
    created_at: float


@dataclass(frozen=True)
class RecordAt:
    """A Worker's record and the cursor of its newest event when the record was read."""

    record: WorkerRecord
    cursor: str


@dataclass(frozen=True)
class Submission:
    """What `submit_input` accepted. `cursor`: `after=cursor` yields every event of the run."""

    input_id: str
    cursor: str
    seq: int
    duplicate: bool
    host: str | None


@dataclass(frozen=True, slots=True)
class WakeUp:
    """A host is told a Worker it hosts has news: new input (`cancels` False: start draining),
    or a cancel, stop or interrupt (`cancels` True: the running turn may have to end).
    `ahead`: the new input of an idle Worker, where the store's hints carry it (small ones;
    its entry id is not known yet): what `take_ahead` may start before the take answers."""

    worker_id: str
    cancels: bool
    ahead: QueuedInput | None = None


@dataclass(frozen=True)
class CancelOutcome:
    state: WorkerState
    cancelled: bool
    host: str | None


class InputPath(ABC):
    """The gateway's writes: every one a single atomic step that tells the host itself (through
    the Worker's wake-ups) when it has news; callers never ring anyone."""

    @abstractmethod
    async def create(self, record: WorkerRecord) -> RecordAt:
        """Persist a new Worker in state `pending`, write its first `state_changed`, and answer
        the cursor of that event (a client reading on from it misses nothing); a fleet store
        also has a member take the Worker."""

    async def create_workers(self, records: Sequence[WorkerRecord]) -> list[RecordAt]:
        """`create` of each record, answered in order. A store may write them together (one
        round trip per node for a fleet store, the runtime-wide parts once per batch): the
        effect is each Worker's own `create`. Nothing here judges scopes or validates: the
        caller did, for the whole batch, before calling. A failure (the store unavailable)
        may leave a prefix, or on a cluster any subset, of the records created."""
        return [await self.create(record) for record in records]

    @abstractmethod
    async def submit_input(
        self,
        worker_id: str,
        text: str,
        input_id: str,
        strategy: Strategy | None,
        ts: float,
        *,
        default_strategies: Mapping[str, Strategy] | None = None,
        max_queued: int | None = None,
        trace: Mapping[str, str] | None = None,
    ) -> Submission:
        """One atomic step: the Worker exists (`WorkerNotFound`); strategy None means its
        profile's default, looked up in `default_strategies` (profile name → strategy; a profile
        missing there is `InvalidInput`); the Worker is live (`WorkerStopped`); a known
        `input_id` answers its first Submission with `duplicate=True` when the text is the same
        and `InputIdConflict` when it is not; `reject` refuses a busy Worker (`WorkerBusy`);
        `max_queued` unfinished inputs refuse any new one (`RateLimited`; a known `input_id`
        still answers); `interrupt` cancels everything unfinished; then the input is appended
        to the input stream (`ts` kept to the millisecond, `trace` with it), its
        `user_message` event written and its host woken."""

    @abstractmethod
    async def cancel(self, worker_id: str) -> CancelOutcome:
        """Cancel the oldest unfinished input (the running one, or the head of the queue).
        A no-op with `cancelled=False` when nothing is unfinished."""

    @abstractmethod
    async def request_stop(self, worker_id: str) -> WorkerRecord:
        """Cancel every unfinished input and move to `stopping` (a host drains, then `stopped`),
        or straight to `stopped` when nothing is unfinished. Idempotent."""

    @abstractmethod
    async def claim_scope(
        self, worker_id: str, scope: Sequence[ScopeEntry], delegated_from: str | None
    ) -> None:
        """Claim `scope` for a Worker about to be created. Raise `ScopeConflict` when a write path
        overlaps a live Worker's claim outside the caller's delegation group, or when a delegated
        child asks for more than its parent holds; claims of ended or vanished Workers are
        reclaimed on the way. Raise `WorkerNotFound` for an unknown parent."""

    @abstractmethod
    async def release_scope(self, worker_id: str) -> None: ...

    @abstractmethod
    async def bind_conversation(
        self, conversation: str, worker_id: str, *, replace: str | None, ttl_s: int
    ) -> str:
        """The Worker bound to a conversation digest: `worker_id` is bound (and answered) when
        nothing is, or when `replace` is the one bound now; else the bound one is answered. One
        atomic step, so concurrent first calls agree on one Worker. The binding lives `ttl_s`
        past its last use (a store without expiry may keep it)."""


class EventMux(ABC):
    """Many Workers' events followed with one wait (a store's `event_mux`): one reader for
    all the streams a gateway follows, where `tail_events` needs a reader per Worker."""

    @abstractmethod
    async def read(
        self, cursors: Mapping[str, str], limit: int, timeout_ms: int
    ) -> dict[str, list[Event] | YoiError]:
        """`tail_events` of every Worker in `cursors` (worker id → its follower's cursor) at
        once: answers as soon as any has news, `wake` is called, or `timeout_ms` is over. A
        Worker with news gets its page; one whose own tail would fail gets that error
        (`CursorExpired`), and the others are unharmed. Workers without news are left out, so
        a vanished Worker is not told here (its follower asks `tail_events` once it has waited
        long enough). `RuntimeUnavailable` is the whole read's: read again from the same
        cursors."""

    @abstractmethod
    async def wake(self) -> None:
        """End the read in progress early: its caller has a Worker to add to it."""


class Readers(ABC):
    """Records, events and transcripts, by cursor."""

    def event_mux(self) -> EventMux | None:
        """A new reader of many Workers' events in one wait, or None where the store has none
        (each follower then tails its own Worker)."""
        return None

    @abstractmethod
    async def get_worker(self, worker_id: str) -> WorkerRecord:
        """Raise `WorkerNotFound` when there is no such Worker (or its retention expired)."""

    @abstractmethod
    async def get_worker_at(self, worker_id: str) -> RecordAt:
        """`get_worker` with the newest event's cursor (`last_cursor`), read together."""

    @abstractmethod
    async def list_workers(self) -> list[WorkerRecord]: ...

    @abstractmethod
    async def listing(self) -> list[Listed]:
        """`list_workers` reduced to what a listing shows (stores may read only that)."""

    @abstractmethod
    async def read_events(self, worker_id: str, after: str | None, limit: int) -> list[Event]:
        """Events strictly after `after` (from the oldest retained when None). `after` is judged
        by `cursor.check_window`: `CursorExpired` when older than the trimmed window,
        `InvalidInput` when ahead of the newest event or not a cursor."""

    @abstractmethod
    async def tail_events(
        self, worker_id: str, after: str, limit: int, timeout_ms: int
    ) -> list[Event]:
        """As `read_events`, waiting up to `timeout_ms` for the first one, for a follower whose
        `after` came from a read (`read_events`, or its own previous tail): a store may skip
        judging it before it waits (an expired cursor is still told; a vanished Worker, once
        the wait is over)."""

    @abstractmethod
    async def last_cursor(self, worker_id: str) -> str:
        """The newest event's cursor, `"0"` when there are none: `after=` it means from now."""

    @abstractmethod
    async def read_transcript(
        self, worker_id: str, limit: int, before: str | None
    ) -> TranscriptPage:
        """Newest `limit` entries older than `before`, returned oldest first; `next_before` pages
        further back, None at the start (`before` 0 is an empty page)."""

    @abstractmethod
    async def read_runs(self, worker_id: str, limit: int, before: str | None) -> RunLogPage:
        """The newest `limit` finished runs older than `before` (a `next_before`), newest
        first. The run log is written by `finish_run` in the same step and bounded like the
        transcript (`transcript_maxlen`)."""

    @abstractmethod
    async def find_run(self, worker_id: str, run_id: str) -> RunDetail | None:
        """A finished run still in the run log, by id; None when it is not there."""

    async def members(self) -> list[MemberInfo]:
        """The runtime processes hosting this store's Workers (diagnostics only)."""
        return []

    async def ping(self) -> None:
        """Raise `RuntimeUnavailable` when the backing service does not answer."""
        return None

    async def drain_member(self, member_id: str) -> bool:
        """Tell a member to hand its Workers back and take no new ones; False when no such
        member is registered. Only fleets have members to drain."""
        raise UnsupportedOperation("this runtime has no members to drain")


class HostSide(ABC):
    """What a host needs: leases, its runs' writes (fenced by epoch) and its wake-ups."""

    @abstractmethod
    def wake_ups(self, member_id: str) -> AsyncGenerator[WakeUp, None]:
        """The Workers this member hosts that have news, as they come; close it (`aclose`) to
        stop listening. Only hints: a host also sweeps (`pending_work`) now and then."""

    @abstractmethod
    async def acquire(self, worker_id: str, member_id: str, ttl_ms: int) -> int | None:
        """Take the Worker's lease if free: bump and return its epoch, record the host. None when
        another member holds it or the Worker has ended."""

    @abstractmethod
    async def renew(self, member_id: str, leases: dict[str, int], ttl_ms: int) -> dict[str, bool]:
        """Extend the leases this member holds: True for each one renewed, False for each one
        it lost. A Worker left out of the answer: the part of Redis that holds its lease (one
        node of a cluster) did not answer in time, so that lease is neither renewed nor known
        lost. `RuntimeUnavailable` when nothing answered."""

    @abstractmethod
    async def release_many(
        self, leases: Mapping[str, int], member_id: str, *, idle_only: bool = False
    ) -> set[str]:
        """Give leases back at once (worker id → epoch; graceful stop), so another member can
        take over; leases no longer held under that epoch are left alone. `idle_only`
        (rebalancing): only Workers with no unfinished input, checked with the lease in one
        step. Answers the Workers given back."""

    @abstractmethod
    async def take_run(
        self,
        worker_id: str,
        member_id: str,
        epoch: int,
        run_id: str,
        ts: float,
        history: int,
        *,
        solo: bool = False,
    ) -> TakenRun | None:
        """The oldest unacknowledged input (claimed from a previous host if need be) started as
        (an attempt of) its run, with the newest `history` transcript entries; None when nothing
        is left to run. Redeliveries of finished runs are acknowledged and skipped. Starting
        bumps the attempt count when this seq was started before, sets state `running`, writes
        the transcript's user entry (first attempt only) and the `run_started` event. Refused
        (`LeaseLost`) unless `member_id` holds the lease now. Raises `RunAlone` for a suspect
        input unless `solo` (the caller starts no other turn while this one runs)."""

    def take_ahead(
        self,
        worker_id: str,
        member_id: str,
        epoch: int,
        run_id: str,
        ts: float,
        history: int,
        item: QueuedInput,
    ) -> TakenAhead | None:
        """`take_run` sent, with the run its host may start before the answer comes: `item`
        (a hint's `WakeUp.ahead`) as its first attempt, with the host's copy of the history.
        None when this store cannot tell that run ahead (no copy; nothing to save: the memory
        store answers at once); the caller takes as usual. The run's appends go with
        `ahead=True` and are refused unless the take confirmed it (`claim.ahead`); unconfirmed,
        the caller drops what it started and runs what the take answered."""
        return None

    @abstractmethod
    async def append_events(
        self,
        worker_id: str,
        epoch: int,
        events: Sequence[Event],
        *,
        run_id: str,
        ahead: bool = False,
    ) -> str:
        """Append the run `run_id`'s events (cursors are assigned here); return the last cursor.
        Refused (`LeaseLost`) unless `run_id` is the Worker's current run (taken and not
        finished, nor taken again since), as `finish_run` is; with `ahead` (a run started by
        `take_ahead`), also unless its take confirmed it."""

    @abstractmethod
    async def finish_run(
        self,
        worker_id: str,
        epoch: int,
        item: QueuedInput,
        outcome: RunOutcome,
        ts: float,
        *,
        run_id: str,
    ) -> bool:
        """End the run `run_id` (refused, `LeaseLost`, unless it is the Worker's current run):
        its unwritten deltas, `error` (when the outcome has an error
        code), `text_done`, `usage` and `run_finished` events, the assistant transcript entry (or
        a notice when there was no text), usage totals, `done_seq`, state (`idle`, `running`
        while more is queued, or `stopped` when draining a stop), and the input's
        acknowledgement. Answers whether more inputs wait."""

    @abstractmethod
    async def is_cancelled(self, worker_id: str, seq: int) -> bool: ...

    @abstractmethod
    async def pending_work(self, worker_ids: Sequence[str]) -> set[str]:
        """The Workers among these with inputs accepted and not finished, or that vanished: all
        a host's sweep has to look at."""


class Store(InputPath, Readers, HostSide, ScheduleStore, WebhookStore):
    """State of one runtime's Workers: every role. Every method is a single atomic step."""

    async def aclose(self) -> None:
        """Release connections. Idempotent."""
