"""Store implementations behind one boundary (`base.Store`, `fleet.FleetStore`), and the one
factory that opens a fleet's store (Redis, imported only when a fleet is used)."""

from __future__ import annotations

from runtime_worker.store.base import Store
from runtime_worker.store.fleet import FleetStore
from shared.errors import InvalidInput
from shared.settings import Settings


def open_fleet_store(settings: Settings, runtime_id: str, *, role: str) -> FleetStore:
    """The store of fleet runtime `runtime_id` at `settings.redis_url`, in its namespace. Its
    connections are named `yoi-<role>` (`CLIENT LIST` tells a gateway's from a member's)."""
    if settings.redis_url is None:
        raise InvalidInput(f"fleet runtime {runtime_id} needs a Redis URL")
    from runtime_worker.store.redis import RedisStore

    return RedisStore.from_url(
        settings.redis_url,
        namespace=settings.namespace,
        runtime_id=runtime_id,
        settings=settings,
        client_name=f"yoi-{role}",
    )


__all__ = ["FleetStore", "Store", "open_fleet_store"]
