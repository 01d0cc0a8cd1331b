"""`Runtime`: the one API to a runtime's Workers, whether embedded here or a fleet over Redis.

An embedded Runtime owns its `Host` (runs happen in this process, on a `MemoryStore`, or a
`SqliteStore` when its Workers should outlive the process); a fleet Runtime is a client over a
`RedisStore` (runs happen in `yoi runtime` member processes). Both
answer with the same wire models, so the gateway never cares which kind it talks to.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import TracebackType
from typing import Self

from runtime_worker import conversations, runs
from runtime_worker.admission import Admission
from runtime_worker.host import Host, ProviderFactory
from runtime_worker.profiles import ProfileRegistry
from runtime_worker.store import open_fleet_store
from runtime_worker.store.base import NOW_CURSOR, Store, WorkerRecord
from runtime_worker.store.memory import MemoryStore
from runtime_worker.store.outcome import total_usage
from shared import tracing
from shared.errors import (
    CursorExpired,
    InvalidInput,
    PayloadTooLarge,
    RuntimeUnavailable,
)
from shared.events import Event, EventPage
from shared.ids import display_ref, is_worker_id, new_id
from shared.models import (
    ENDED_STATES,
    LIVE_STATES,
    CancelResult,
    Capabilities,
    CreateWorker,
    InFlight,
    InputAccepted,
    MemberInfo,
    RunDetail,
    RunPage,
    RuntimeDetail,
    RuntimeDiagnostics,
    RuntimeKind,
    RuntimeSummary,
    SendInput,
    TranscriptPage,
    Usage,
    WorkerDetail,
    WorkerDiagnostics,
    WorkerSummary,
)
from shared.settings import EMBEDDED_RUNTIME_ID, Settings
from shared.timeutil import now_s

log = logging.getLogger("yoi.runtime")

EMBEDDED_MEMBER_ID = "embedded"
DEFAULT_PROFILE = "assistant"
MAX_PAGE = 1000
MAX_WAIT_MS = 60_000

try:
    VERSION = version("yoi-fleet")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    VERSION = "0.0.0"


class Runtime:
    """A concrete runtime. Build one with `Runtime.embedded(...)` or `Runtime.fleet(...)`."""

    def __init__(
        self,
        runtime_id: str,
        store: Store,
        *,
        kind: RuntimeKind,
        settings: Settings,
        profiles: ProfileRegistry | None = None,
        host: Host | None = None,
        admission: Admission | None = None,
    ) -> None:
        self.runtime_id = runtime_id
        self.admission = admission  # a fleet's clients refuse work no member can run
        self.kind = kind
        self.store = store
        self.settings = settings
        self.profiles = profiles or ProfileRegistry(settings.profiles_dir)
        self.host = host

    # -- construction and lifecycle --------------------------------------------------------------

    @classmethod
    def embedded(
        cls,
        settings: Settings | None = None,
        *,
        runtime_id: str = EMBEDDED_RUNTIME_ID,
        profiles: ProfileRegistry | None = None,
        provider_factory: ProviderFactory | None = None,
        path: Path | None = None,
        store: Store | None = None,
    ) -> Runtime:
        """A runtime living in this process, its runs on this event loop. Its store: `store`
        when given, else a durable SQLite file at `path`, else memory (gone with the process)."""
        settings = settings or Settings()
        profiles = profiles or ProfileRegistry(settings.profiles_dir)
        if store is None and path is not None:
            from runtime_worker.store.sqlite import SqliteStore

            store = SqliteStore(path, settings)
        store = store or MemoryStore(settings)
        host = Host(
            store,
            runtime_id=runtime_id,
            member_id=EMBEDDED_MEMBER_ID,
            profiles=profiles,
            settings=settings,
            provider_factory=provider_factory,
        )
        return cls(
            runtime_id,
            store,
            kind=RuntimeKind.EMBEDDED,
            settings=settings,
            profiles=profiles,
            host=host,
        )

    @classmethod
    def fleet(
        cls, runtime_id: str, settings: Settings, *, admission: bool = False, role: str = "client"
    ) -> Runtime:
        """A client of a fleet runtime over Redis; its runs happen in `yoi runtime` members.
        With `admission` (the gateway's), it refuses work no member can run (503). `role` names
        its Redis connections (`yoi-<role>`)."""
        store = open_fleet_store(settings, runtime_id, role=role)
        admits = Admission(store, settings) if admission else None
        return cls(runtime_id, store, kind=RuntimeKind.FLEET, settings=settings, admission=admits)

    async def start(self) -> None:
        if self.host is not None:
            await self.host.start()
            # A durable store reopened: host its Workers again, so a run the last process was
            # on when it died ends (attempt 2, or `host_lost`) instead of staying "running".
            for record in await self.store.list_workers():
                if record.state in ENDED_STATES:
                    continue
                try:
                    await self.host.adopt(record.worker_id)
                except InvalidInput:  # its profile is gone: the Worker stays, unhosted
                    log.warning("worker %s not hosted: unknown profile", record.worker_id)

    async def aclose(self) -> None:
        """Stop the host (draining for the grace period) and close the store. Idempotent."""
        if self.host is not None:
            await self.host.stop()
        await self.store.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the runtime -----------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        return Capabilities()

    async def members(self) -> list[MemberInfo]:
        if self.host is not None:
            return [
                MemberInfo(
                    member_id=EMBEDDED_MEMBER_ID,
                    capacity=self.settings.capacity,
                    hosted=self.host.hosted_count,
                    alive=True,
                )
            ]
        return await self.store.members()

    async def ping(self) -> None:
        """Raise `RuntimeUnavailable` when the runtime's store does not answer."""
        await self.store.ping()

    async def diagnostics(self) -> RuntimeDiagnostics:
        records = await self.store.list_workers()
        return RuntimeDiagnostics(
            kind=self.kind, members=await self.members(), workers=len(records), version=VERSION
        )

    async def summary(self) -> RuntimeSummary:
        try:
            records = await self.store.list_workers()
            members = await self.members()
        except RuntimeUnavailable:
            return RuntimeSummary(
                runtime_id=self.runtime_id, kind=self.kind, status="unavailable", workers=0
            )
        alive = any(member.alive for member in members)
        return RuntimeSummary(
            runtime_id=self.runtime_id,
            kind=self.kind,
            status="ok" if alive else "degraded",
            workers=len(records),
        )

    async def detail(self) -> RuntimeDetail:
        summary = await self.summary()
        if summary.status == "unavailable":
            raise RuntimeUnavailable(f"runtime {self.runtime_id} is unavailable")
        return RuntimeDetail(
            **summary.model_dump(),
            capabilities=self.capabilities(),
            diagnostics=await self.diagnostics(),
            usage=await self.usage(),
        )

    async def usage(self) -> Usage:
        """Totals over every Worker: tokens, runs by result, errors, and the last error seen."""
        return total_usage(await self.store.list_workers())

    # -- workers ---------------------------------------------------------------------------------

    async def _detail(self, record: WorkerRecord, cursor: str | None = None) -> WorkerDetail:
        """The wire detail of a record; `cursor` when the caller knows the newest event's."""
        return WorkerDetail(
            runtime_id=self.runtime_id,
            worker_id=record.worker_id,
            display_name=record.display_name,
            display_ref=display_ref(record.display_name, self.runtime_id),
            profile=record.profile,
            state=record.state,
            kind=self.kind,
            created_at=record.created_at,
            scope=record.scope,
            delegated_from=record.delegated_from,
            capabilities=self.capabilities(),
            diagnostics=WorkerDiagnostics(
                kind=self.kind,
                host=record.host,
                epoch=record.epoch,
                queue_depth=record.queue_depth,
                version=VERSION,
            ),
            usage=record.usage,
            in_flight=await self._in_flight(record),
            cursor=cursor if cursor is not None else await self.store.last_cursor(record.worker_id),
        )

    async def _record(self, worker_id: str) -> WorkerRecord:
        if not is_worker_id(worker_id):
            raise InvalidInput("malformed worker id")
        return await self.store.get_worker(worker_id)

    async def list_workers(self) -> list[WorkerSummary]:
        listed = await self.store.listing()
        listed.sort(key=lambda w: w.created_at)
        # Built without validation: every value comes from a record made from a valid request.
        return [
            WorkerSummary.model_construct(
                runtime_id=self.runtime_id,
                worker_id=w.worker_id,
                display_name=w.display_name,
                display_ref=display_ref(w.display_name, self.runtime_id),
                profile=w.profile,
                state=w.state,
                kind=self.kind,
                created_at=w.created_at,
            )
            for w in listed
        ]

    async def get_worker(self, worker_id: str) -> WorkerDetail:
        if not is_worker_id(worker_id):
            raise InvalidInput("malformed worker id")
        found = await self.store.get_worker_at(worker_id)  # one round trip on a fleet
        if found.record.run_id is not None:
            # The cursor must not be older than the in-flight text: read it after that.
            return await self._detail(found.record)
        return await self._detail(found.record, found.cursor)

    async def find_worker(
        self, display_name: str, *, profile: str | None = None
    ) -> WorkerSummary | None:
        """The oldest live Worker with this display name (and profile, when given): names are
        for people, not routing."""
        for summary in await self.list_workers():
            if (
                summary.display_name == display_name
                and summary.state in LIVE_STATES
                and profile in (None, summary.profile)
            ):
                return summary
        return None

    async def create_worker(
        self, request: CreateWorker, *, worker_id: str | None = None
    ) -> WorkerDetail:
        """`worker_id`: an id the caller generated (and bound, see `conversation_worker`)."""
        profile = self.profiles.get(request.profile or DEFAULT_PROFILE)
        if self.admission is not None:
            await self.admission.admit_worker()
        if request.delegated_from is not None:
            await self._record(request.delegated_from)
        worker_id = worker_id or new_id()
        await self.store.claim_scope(worker_id, request.scope, request.delegated_from)
        record = WorkerRecord(
            worker_id=worker_id,
            display_name=request.display_name,
            profile=profile.name,
            created_at=now_s(),
            scope=list(request.scope),
            delegated_from=request.delegated_from,
            transcript_maxlen=profile.transcript_maxlen,
        )
        try:
            # A fleet store hints its members in the same step: one takes the Worker at once.
            created = await self.store.create(record)
        except RuntimeUnavailable:
            # Redis is away and the create may have landed: the claim stays (a claim whose
            # Worker never appears is reclaimed once stale), and the caller gets its 503 now.
            raise
        except BaseException:
            await self.store.release_scope(worker_id)
            raise
        if self.host is not None:
            await self.host.adopt(worker_id)
            return await self.get_worker(worker_id)
        # The detail of what was just written: no read back (a member may be taking it now).
        return await self._detail(created.record, created.cursor)

    async def ensure_worker(self, request: CreateWorker) -> WorkerDetail:
        """The live Worker with this display name, created on first use."""
        found = await self.find_worker(request.display_name, profile=request.profile)
        if found is not None:
            return await self.get_worker(found.worker_id)
        return await self.create_worker(request)

    async def conversation_worker(self, profile: str, key: str) -> WorkerDetail:
        """The live Worker continuing conversation `key` with `profile`, created on first use
        (once, even for concurrent first calls, across gateways: the binding is in the store)."""
        return await conversations.conversation_worker(self, profile, key)

    async def stop_worker(self, worker_id: str) -> WorkerDetail:
        await self._record(worker_id)
        record = await self.store.request_stop(worker_id)  # it wakes the host that drains
        await self.store.release_scope(worker_id)
        return await self._detail(record)

    # -- inputs ----------------------------------------------------------------------------------

    async def send_input(self, worker_id: str, request: SendInput) -> InputAccepted:
        if not request.text.strip():
            raise InvalidInput("the text is empty")
        if len(request.text) > self.settings.max_input_chars:
            raise PayloadTooLarge(
                f"the text is longer than {self.settings.max_input_chars} characters"
            )
        if not is_worker_id(worker_id):
            raise InvalidInput("malformed worker id")
        if self.admission is not None:
            await self.admission.admit_input(worker_id)
        # One store step: it checks the Worker, resolves its profile's default strategy and
        # wakes the Worker's host.
        submission = await self.store.submit_input(
            worker_id,
            request.text,
            request.input_id or new_id(),
            request.strategy,
            now_s(),
            default_strategies=self.profiles.default_strategies(),
            max_queued=self.settings.max_queued_inputs,
            trace=tracing.carrier(),
        )
        return InputAccepted(input_id=submission.input_id, cursor=submission.cursor)

    async def wait_run(
        self, worker_id: str, accepted: InputAccepted, wait_s: float
    ) -> RunDetail | None:
        """The accepted input's finished run if it ends within `wait_s`, else None."""
        return await runs.wait_run(self, worker_id, accepted, wait_s)

    async def runs(self, worker_id: str, *, limit: int = 50, before: str | None = None) -> RunPage:
        """The run log, newest first: the running run on top, then finished ones."""
        return await runs.list_runs(self, worker_id, _clamp(limit), before)

    async def run(self, worker_id: str, run_id: str) -> RunDetail:
        return await runs.get_run(self, worker_id, run_id)

    async def cancel(self, worker_id: str) -> CancelResult:
        await self._record(worker_id)
        outcome = await self.store.cancel(worker_id)
        return CancelResult(worker_id=worker_id, state=outcome.state, cancelled=outcome.cancelled)

    # -- readers ---------------------------------------------------------------------------------

    async def transcript(
        self, worker_id: str, *, limit: int = 50, before: str | None = None
    ) -> TranscriptPage:
        await self._record(worker_id)
        return await self.store.read_transcript(worker_id, _clamp(limit), before)

    async def events(
        self, worker_id: str, *, after: str | None = None, limit: int = 100, wait_ms: int = 0
    ) -> EventPage:
        """A page of events after a cursor; `wait_ms` long-polls for the first one."""
        if not is_worker_id(worker_id):
            raise InvalidInput("malformed worker id")
        if not 0 <= wait_ms <= MAX_WAIT_MS:
            raise InvalidInput(f"wait_ms must be between 0 and {MAX_WAIT_MS}")
        limit = _clamp(limit)
        # The store's reads tell an unknown Worker themselves: no record read first.
        if after == NOW_CURSOR:
            after = await self.store.last_cursor(worker_id)
        events = await self.store.read_events(worker_id, after, limit)  # judges the cursor
        if not events and wait_ms > 0:
            events = await self.store.tail_events(worker_id, after or "0", limit, wait_ms)
        cursor = events[-1].cursor if events else (after or "0")
        return EventPage(events=events, cursor=cursor)

    async def tail(self, worker_id: str, *, after: str, limit: int, wait_ms: int) -> EventPage:
        """`events` for a follower whose `after` is the cursor of its own previous page (a
        stream's one reader): the store may skip checking it again before waiting."""
        if not is_worker_id(worker_id):
            raise InvalidInput("malformed worker id")
        events = await self.store.tail_events(
            worker_id, after, _clamp(limit), min(max(wait_ms, 0), MAX_WAIT_MS)
        )
        return EventPage(events=events, cursor=events[-1].cursor if events else after)

    async def subscribe(
        self, worker_id: str, *, after: str | None = None, poll_ms: int = 1000
    ) -> AsyncIterator[Event]:
        """Every event after `after`, live, forever: no gap and no repeat, by cursor."""
        await self._record(worker_id)
        cursor = await self.store.last_cursor(worker_id) if after == NOW_CURSOR else after or "0"
        await self.store.read_events(worker_id, cursor, 1)  # judges the cursor once
        while True:
            for event in await self.store.tail_events(worker_id, cursor, MAX_PAGE, poll_ms):
                cursor = event.cursor
                yield event

    async def _in_flight(self, record: WorkerRecord) -> InFlight | None:
        """The running attempt's text so far, folded from its events after `run_started`."""
        if record.run_id is None or record.run_cursor is None:
            return None
        parts: list[str] = []
        cursor = record.run_cursor
        with contextlib.suppress(CursorExpired):  # a run longer than the window: show its tail
            while True:
                page = await self.store.read_events(record.worker_id, cursor, MAX_PAGE)
                if not page:
                    break
                for event in page:
                    if event.type == "text_delta" and event.run_id == record.run_id:
                        parts.append(event.text)
                cursor = page[-1].cursor
        return InFlight(
            run_id=record.run_id,
            input_id=record.run_input_id or "",
            attempt=max(record.run_attempt, 1),
            text="".join(parts),
            cursor=cursor,
        )


def _clamp(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
    return limit


__all__ = ["EMBEDDED_MEMBER_ID", "Runtime"]
