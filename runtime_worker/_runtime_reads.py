"""`RuntimeReads`: everything `Runtime` answers without changing anything.

Apart from the writes so a reader's path (status, listings, details, transcript, event pages
and tails, runs) can be read, and changed, in one place; none of these calls writes to a store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from runtime_worker import runs
from runtime_worker._runtime_base import (
    EMBEDDED_MEMBER_ID,
    MAX_PAGE,
    MAX_WAIT_MS,
    VERSION,
    RuntimeBase,
    clamp,
)
from runtime_worker.store.base import NOW_CURSOR, EventMux
from runtime_worker.store.outcome import total_usage
from shared.errors import InvalidInput, RuntimeUnavailable
from shared.events import Event, EventPage
from shared.ids import is_worker_id
from shared.models import (
    LIVE_STATES,
    InputAccepted,
    MemberInfo,
    RunDetail,
    RunPage,
    RuntimeDetail,
    RuntimeDiagnostics,
    RuntimeSummary,
    TranscriptPage,
    Usage,
    WorkerDetail,
    WorkerSummary,
)


class RuntimeReads(RuntimeBase):
    """The runtime's state and its Workers', read."""

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
        """Summary, diagnostics and usage from one read of the records and one of the members:
        at 100,000 Workers each read of every record is a second of work."""
        try:
            records = await self.store.list_workers()
            members = await self.members()
        except RuntimeUnavailable:
            raise RuntimeUnavailable(f"runtime {self.runtime_id} is unavailable") from None
        alive = any(member.alive for member in members)
        return RuntimeDetail(
            runtime_id=self.runtime_id,
            kind=self.kind,
            status="ok" if alive else "degraded",
            workers=len(records),
            capabilities=self.capabilities(),
            diagnostics=RuntimeDiagnostics(
                kind=self.kind, members=members, workers=len(records), version=VERSION
            ),
            usage=total_usage(records),
        )

    async def usage(self) -> Usage:
        """Totals over every Worker: tokens, runs by result, errors, and the last error seen."""
        return total_usage(await self.store.list_workers())

    async def list_workers(self) -> list[WorkerSummary]:
        listed = await self.store.listing()
        listed.sort(key=lambda w: w.created_at)
        # Built without validation: every value comes from a record made from a valid request.
        return [WorkerSummary.model_construct(**self.summary_fields(w)) for w in listed]

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

    async def transcript(
        self, worker_id: str, *, limit: int = 50, before: str | None = None
    ) -> TranscriptPage:
        await self._record(worker_id)
        return await self.store.read_transcript(worker_id, clamp(limit), before)

    async def events(
        self, worker_id: str, *, after: str | None = None, limit: int = 100, wait_ms: int = 0
    ) -> EventPage:
        """A page of events after a cursor; `wait_ms` long-polls for the first one."""
        if not is_worker_id(worker_id):
            raise InvalidInput("malformed worker id")
        if not 0 <= wait_ms <= MAX_WAIT_MS:
            raise InvalidInput(f"wait_ms must be between 0 and {MAX_WAIT_MS}")
        limit = clamp(limit)
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
            worker_id, after, clamp(limit), min(max(wait_ms, 0), MAX_WAIT_MS)
        )
        return EventPage(events=events, cursor=events[-1].cursor if events else after)

    def event_mux(self) -> EventMux | None:
        """A reader of many Workers' events in one wait (`EventMux`), for a follower of many
        Workers' streams (the gateway's hubs); None where the store has none, and each
        follower uses `tail`. Its cursors must come from reads, as `tail`'s do."""
        return self.store.event_mux()

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

    async def wait_run(
        self, worker_id: str, accepted: InputAccepted, wait_s: float
    ) -> RunDetail | None:
        """The accepted input's finished run if it ends within `wait_s`, else None."""
        return await runs.wait_run(self, worker_id, accepted, wait_s)

    async def runs(self, worker_id: str, *, limit: int = 50, before: str | None = None) -> RunPage:
        """The run log, newest first: the running run on top, then finished ones."""
        return await runs.list_runs(self, worker_id, clamp(limit), before)

    async def run(self, worker_id: str, run_id: str) -> RunDetail:
        return await runs.get_run(self, worker_id, run_id)
