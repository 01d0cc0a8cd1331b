"""`RuntimeRegistry`: every runtime the gateway serves, looked up by `runtime_id`.

The embedded `backend-internal` runtime always exists, durable in `settings.data_dir` (memory
only when that is None); one fleet runtime per id in
`settings.fleets` joins it when a Redis URL is configured. A fleet whose Redis is down stays
registered: its calls raise `RuntimeUnavailable` (503) while the embedded runtime keeps working.
"""

from __future__ import annotations

import logging
from pathlib import Path

from runtime_worker.runtime import Runtime
from shared.errors import RuntimeNotFound
from shared.ids import is_runtime_id
from shared.settings import EMBEDDED_RUNTIME_ID, Settings

log = logging.getLogger("yoi.gateway")

EMBEDDED_STORE_FILE = f"{EMBEDDED_RUNTIME_ID}.sqlite3"


def embedded_store_path(settings: Settings) -> Path | None:
    """Where `backend-internal` keeps its Workers; None: in memory, gone with the process."""
    return None if settings.data_dir is None else settings.data_dir / EMBEDDED_STORE_FILE


def check_embedded_store(settings: Settings) -> None:
    """Fail before serving (`RuntimeUnavailable`) when another gateway holds the data dir."""
    path = embedded_store_path(settings)
    if path is not None:
        from runtime_worker.store.sqlite import check_free

        check_free(path)


class RuntimeRegistry:
    """Owns its runtimes: `start()` in the app lifespan, `aclose()` on shutdown."""

    def __init__(self, runtimes: list[Runtime]) -> None:
        self._runtimes = {runtime.runtime_id: runtime for runtime in runtimes}
        if EMBEDDED_RUNTIME_ID not in self._runtimes:
            raise ValueError("the registry needs the embedded runtime")

    @classmethod
    def from_settings(
        cls, settings: Settings, *, embedded: Runtime | None = None
    ) -> RuntimeRegistry:
        runtimes = [embedded or Runtime.embedded(settings, path=embedded_store_path(settings))]
        if settings.redis_url is not None:
            runtimes += [
                Runtime.fleet(runtime_id, settings, admission=settings.admission, role="gateway")
                for runtime_id in settings.fleets
            ]
        elif settings.fleets:
            # Fleets without Redis cannot exist: say so instead of serving a silently smaller set.
            raise ValueError("fleet runtimes are configured but no Redis URL is set")
        if settings.chat_runtime not in {runtime.runtime_id for runtime in runtimes}:
            # `model` = a profile would name a runtime that is not there: refuse to start.
            raise ValueError(f"the chat runtime {settings.chat_runtime} is not served here")
        return cls(runtimes)

    @property
    def embedded(self) -> Runtime:
        return self._runtimes[EMBEDDED_RUNTIME_ID]

    def get(self, runtime_id: str) -> Runtime:
        """The runtime, or `RuntimeNotFound` for an unknown or malformed id (never echoed)."""
        if not is_runtime_id(runtime_id):
            raise RuntimeNotFound("malformed runtime id")
        runtime = self._runtimes.get(runtime_id)
        if runtime is None:
            raise RuntimeNotFound(f"no runtime {runtime_id}")
        return runtime

    def all(self) -> list[Runtime]:
        """The embedded runtime first, then fleets in configuration order."""
        return list(self._runtimes.values())

    async def start(self) -> None:
        started: list[Runtime] = []
        try:
            for runtime in self._runtimes.values():
                await runtime.start()
                started.append(runtime)
        except BaseException:
            for runtime in reversed(started):
                await runtime.aclose()
            raise

    async def aclose(self) -> None:
        """Close every runtime even when one fails to close; idempotent like `Runtime.aclose`."""
        for runtime in reversed(self.all()):
            try:
                await runtime.aclose()
            except Exception as exc:  # one bad close must not leak the others' connections
                log.warning(
                    "runtime %s did not close cleanly: %s", runtime.runtime_id, type(exc).__name__
                )
