"""`RuntimeBase`: what every part of `Runtime` stands on: its state, its limits and the wire detail
of a Worker.

Apart from `runtime.py` so the reads, the writes and the lifecycle (each its own module) share one
definition of a Worker's detail and of the request limits, and the helpers in `runs.py` type
against it without importing the whole `Runtime`.
"""

from __future__ import annotations

import contextlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Protocol

from runtime_worker.admission import Admission
from runtime_worker.host import Host
from runtime_worker.profiles import ProfileRegistry
from runtime_worker.store.base import Store, WorkerRecord
from runtime_worker.webhook_urls import webhook_info
from shared.errors import CursorExpired, InvalidInput
from shared.ids import display_ref, is_worker_id
from shared.models import (
    Capabilities,
    InFlight,
    RuntimeKind,
    WorkerDetail,
    WorkerDiagnostics,
    WorkerState,
)
from shared.settings import Settings

EMBEDDED_MEMBER_ID = "embedded"
DEFAULT_PROFILE = "assistant"
MAX_PAGE = 1000
MAX_WAIT_MS = 60_000

try:
    VERSION = version("yoi-fleet")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    VERSION = "0.0.0"


class Summarized(Protocol):
    """What a Worker's summary is made of: a record, or a listing's few fields."""

    @property
    def worker_id(self) -> str: ...
    @property
    def display_name(self) -> str: ...
    @property
    def profile(self) -> str: ...
    @property
    def state(self) -> WorkerState: ...
    @property
    def created_at(self) -> float: ...


class RuntimeBase:
    """A runtime's state: its id and kind, its store, settings, profiles, and its `Host` when
    embedded (its `Admission` when a fleet's gateway)."""

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

    def capabilities(self) -> Capabilities:
        return Capabilities()

    async def _record(self, worker_id: str) -> WorkerRecord:
        if not is_worker_id(worker_id):
            raise InvalidInput("malformed worker id")
        return await self.store.get_worker(worker_id)

    def summary_fields(self, worker: Summarized) -> dict[str, Any]:
        """The fields every wire view of a Worker opens with (`WorkerSummary`: the listing, the
        dashboard's row, the detail), defined once so the views cannot drift apart."""
        return {
            "runtime_id": self.runtime_id,
            "worker_id": worker.worker_id,
            "display_name": worker.display_name,
            "display_ref": display_ref(worker.display_name, self.runtime_id),
            "profile": worker.profile,
            "state": worker.state,
            "kind": self.kind,
            "created_at": worker.created_at,
        }

    async def _detail(self, record: WorkerRecord, cursor: str | None = None) -> WorkerDetail:
        """The wire detail of a record; `cursor` when the caller knows the newest event's."""
        return WorkerDetail(
            **self.summary_fields(record),
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
            webhook=webhook_info(record.webhook_url, record.webhook_last, self.settings),
        )

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


def clamp(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
    return limit
