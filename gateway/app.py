"""`create_app(settings)`: the gateway as an ASGI app, with its clients made in the lifespan.

Middleware, outermost first: access log and metrics (and the last-resort typed 500), CORS (only
when origins are configured), auth (token or stream ticket), the per-caller rate limit (only
when `YOI_RATE_LIMIT_PER_S` is set), body size limit, then the hot routes' own dispatch. The hot
routes (inputs, the events long poll, create) are cheap themselves (`gateway.requests`) and
reach their endpoints without the router's scan (`gateway.hotroutes`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from gateway import errors, openapi
from gateway.auth import AuthMiddleware, Tickets, api_token, check_bind
from gateway.companion import Companion
from gateway.hotroutes import HotRoutesMiddleware
from gateway.hub import Hubs
from gateway.metrics import Metrics
from gateway.middleware import AccessLogMiddleware, BodyLimitMiddleware
from gateway.ratelimit import RateLimiter, RateLimitMiddleware
from gateway.registry import RuntimeRegistry
from gateway.routes import ROUTERS
from gateway.state import Gateway
from runtime_worker.runtime import MAX_PAGE, VERSION
from shared import tracing
from shared.settings import Settings

STREAM_HEADERS = ["Authorization", "Content-Type", "Last-Event-ID"]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Raises `gateway.auth.UnsafeConfig` for a bind beyond loopback without a token."""
    settings = settings or Settings()
    check_bind(settings)
    metrics = Metrics()
    hubs = Hubs(
        capacity=settings.sse_buffer_events,
        page_limit=min(MAX_PAGE, settings.sse_buffer_events),
        on_events=metrics.saw_events,
        on_overflow=metrics.sse_slow_disconnects.inc,
        multiplex=True,
    )
    metrics.sse_lag.set_function(hubs.max_lag)
    metrics.sse_readers.set_function(hubs.readers)
    gateway = Gateway(settings=settings, metrics=metrics, tickets=Tickets(settings), hubs=hubs)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tracing.configure("yoi-gateway")  # only when OTEL_* asks for traces
        registry = RuntimeRegistry.from_settings(settings)
        await registry.start()
        gateway.registry = registry
        gateway.companion = Companion(registry.embedded)
        try:
            yield
        finally:
            await hubs.aclose()
            await registry.aclose()

    middleware = [Middleware(AccessLogMiddleware, metrics=metrics)]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=STREAM_HEADERS,
                max_age=600,
            )
        )
    middleware += [
        Middleware(
            AuthMiddleware,
            token=api_token(settings),
            tickets=gateway.tickets,
            companion_id=gateway.companion_id,
        ),
    ]
    if settings.rate_limit_per_s is not None:  # after auth: a caller is a token that passed
        limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
        middleware.append(Middleware(RateLimitMiddleware, limiter=limiter))
    middleware += [
        Middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes),
        # Innermost: the hot routes (`RequestRoute`s) straight to their endpoints, below
        # everything above and with the same exception handlers (`gateway.hotroutes`).
        Middleware(HotRoutesMiddleware),
    ]
    app = FastAPI(
        title="Yoi Fleet gateway",
        version=VERSION,
        summary="Conversational Workers on embedded and fleet runtimes.",
        lifespan=lifespan,
        middleware=middleware,
        docs_url=None,  # `gateway.openapi` serves /docs with its own assets, no CDN
        redoc_url=None,
        responses=errors.error_responses(500),
        # FastAPI's own OpenTelemetry spans record the URL with its query (a stream's `?ticket=`)
        # and cost provider look-ups on every request: off. shared.tracing makes the spans we want.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.gateway = gateway
    errors.install(app)
    openapi.install(app, settings)
    for router in ROUTERS:
        # The routers' routes themselves, in order: `include_router` keeps each router as a
        # branch that is scanned twice (matched, then matched again to handle) on every request
        # that reaches it, about a third of a hot request's CPU. Each route already carries its
        # router's prefix and responses (each router declares the 500 too, first, as the app's
        # `responses` would have been merged in), so the OpenAPI document is the same.
        app.router.routes.extend(router.routes)
    app.mount("/static", StaticFiles(packages=[("gateway", "static")]), name="static")
    return app


__all__ = ["create_app"]
