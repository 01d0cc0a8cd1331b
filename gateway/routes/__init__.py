"""One router per resource; `gateway.app` includes them all."""

from gateway.routes import (
    companion,
    console,
    events,
    fleet,
    openai,
    ops,
    runs,
    runtimes,
    schedules,
    webhooks,
    workers,
)

ROUTERS = (
    runtimes.router,
    workers.router,
    webhooks.router,
    runs.router,
    schedules.router,
    events.router,
    companion.router,
    openai.router,
    ops.router,
    fleet.router,
    console.router,
)

__all__ = ["ROUTERS"]
