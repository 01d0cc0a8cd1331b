"""What one gateway app holds: built by `create_app`, filled by its lifespan, read by `deps`."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.auth import Tickets
from gateway.companion import Companion
from gateway.hub import Hubs
from gateway.metrics import Metrics
from gateway.registry import RuntimeRegistry
from shared.settings import Settings


@dataclass
class Gateway:
    settings: Settings
    metrics: Metrics
    tickets: Tickets
    hubs: Hubs
    registry: RuntimeRegistry | None = None
    companion: Companion | None = None

    def runtimes(self) -> RuntimeRegistry:
        if self.registry is None:
            raise RuntimeError("the gateway's lifespan has not started")
        return self.registry

    def the_companion(self) -> Companion:
        if self.companion is None:
            raise RuntimeError("the gateway's lifespan has not started")
        return self.companion

    def companion_id(self) -> str | None:
        """For the auth middleware (synchronous): the Companion's id once it exists."""
        return self.companion.worker_id if self.companion is not None else None
