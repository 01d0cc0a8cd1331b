"""The workspace's Companion: a Worker on `backend-internal`, created on first use."""

from __future__ import annotations

import asyncio

from runtime_worker.runtime import Runtime
from shared.errors import WorkerNotFound
from shared.models import LIVE_STATES, CreateWorker, WorkerDetail

DISPLAY_NAME = "companion"
PROFILE = "companion"


class Companion:
    """Finds or creates the Companion; a lock makes concurrent first requests create one."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.worker_id: str | None = None
        self._lock = asyncio.Lock()

    async def _cached(self) -> WorkerDetail | None:
        if self.worker_id is None:
            return None
        try:
            detail = await self.runtime.get_worker(self.worker_id)
        except WorkerNotFound:
            return None
        return detail if detail.state in LIVE_STATES else None

    async def detail(self) -> WorkerDetail:
        """The live Companion; a stopped one is replaced by a new one on the next use."""
        detail = await self._cached()
        if detail is not None:
            return detail
        async with self._lock:
            detail = await self._cached()  # another request may have created it meanwhile
            if detail is None:
                request = CreateWorker(display_name=DISPLAY_NAME, profile=PROFILE)
                detail = await self.runtime.ensure_worker(request)
                self.worker_id = detail.worker_id
            return detail

    async def id(self) -> str:
        return (await self.detail()).worker_id
