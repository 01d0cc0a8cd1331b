"""`Runtime`: the one API to a runtime's Workers, whether embedded here or a fleet over Redis.

An embedded Runtime owns its `Host` (runs happen in this process, on a `MemoryStore`, or a
`SqliteStore` when its Workers should outlive the process); a fleet Runtime is a client over a
`RedisStore` (runs happen in `yoi runtime` member processes). Both
answer with the same wire models, so the gateway never cares which kind it talks to.

`Runtime` is built in layers, one module each: `_runtime_base` (state, limits, a Worker's
detail), `_runtime_reads`, `_runtime_writes`, `_runtime_schedules`, and here its construction
and lifecycle (the embedded runtime's scheduler loop with it).
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import Self

from runtime_worker._runtime_base import (
    DEFAULT_PROFILE,
    EMBEDDED_MEMBER_ID,
    MAX_PAGE,
    MAX_WAIT_MS,
    VERSION,
)
from runtime_worker._runtime_schedules import RuntimeSchedules
from runtime_worker.admission import Admission
from runtime_worker.host import Host, ProviderFactory
from runtime_worker.profiles import ProfileRegistry
from runtime_worker.schedules_embedded import ScheduleLoop
from runtime_worker.store import open_fleet_store
from runtime_worker.store.base import Store
from runtime_worker.store.memory import MemoryStore
from shared.errors import InvalidInput
from shared.models import ENDED_STATES, RuntimeKind
from shared.settings import EMBEDDED_RUNTIME_ID, Settings

log = logging.getLogger("yoi.runtime")


class Runtime(RuntimeSchedules):
    """A concrete runtime. Build one with `Runtime.embedded(...)` or `Runtime.fleet(...)`."""

    # The embedded runtime fires its own schedules (this loop); a fleet's members do (arq).
    _schedule_loop: ScheduleLoop | None = None

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
        if self.admission is not None:
            self.admission.start()
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
            if self._schedule_loop is None:
                self._schedule_loop = ScheduleLoop(self.schedules, self.settings)
                self._schedule_loop.start()

    async def aclose(self) -> None:
        """Stop the scheduler and the host (draining for the grace period) and close the store.
        Idempotent."""
        if self._schedule_loop is not None:
            await self._schedule_loop.stop()
        if self.admission is not None:
            await self.admission.aclose()
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


__all__ = [
    "DEFAULT_PROFILE",
    "EMBEDDED_MEMBER_ID",
    "MAX_PAGE",
    "MAX_WAIT_MS",
    "VERSION",
    "Runtime",
]
