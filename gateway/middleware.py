"""Pure ASGI middleware: the access log and metrics (with the last-resort 500), and body limits.

Pure ASGI rather than `BaseHTTPMiddleware`, so streams pass through untouched and a client
disconnect still reaches the stream at once.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.responses import JSONResponse
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import INTERNAL_MESSAGE, error_response, internal_error_body
from gateway.metrics import UNROUTED, Metrics
from gateway.openai import errors as openai_errors
from shared.errors import PayloadTooLarge

access_log = logging.getLogger("yoi.gateway.access")
log = logging.getLogger("yoi.gateway")

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def route_template(scope: Scope) -> str:
    """`/api/runtimes/{runtime_id}`, never the concrete path: no id, ticket or query in logs."""
    route = scope.get("route")
    path = getattr(route, "path", None) if isinstance(route, BaseRoute) else None
    if isinstance(path, str) and path:
        return path
    mount = scope.get("root_path")  # a mounted app (the static files) sets its prefix here
    return f"{mount}/{{path}}" if isinstance(mount, str) and mount else UNROUTED


class AccessLogMiddleware:
    """Outermost: logs method, route template, status and duration; turns any exception that
    escaped everything else into a typed 500 and logs its type name only."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500
        streaming = False
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, streaming, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                streaming = any(
                    name == b"content-type" and value.startswith(b"text/event-stream")
                    for name, value in message.get("headers", ())
                )
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            # Type name only: a traceback would print source paths and frame values.
            log.error(
                "unhandled %s answering %s %s",
                type(exc).__name__,
                scope["method"],
                route_template(scope),
            )
            if not response_started:
                status = 500
                if openai_errors.is_openai_path(scope["path"]):
                    answer = openai_errors.internal_error(INTERNAL_MESSAGE)
                else:
                    answer = JSONResponse(internal_error_body(), status_code=500)
                await answer(scope, receive, send)
        finally:
            duration_s = time.monotonic() - started
            route = route_template(scope)
            self.metrics.request(route, scope["method"], status, None if streaming else duration_s)
            access_log.info("%s %s %d %.1fms", scope["method"], route, status, duration_s * 1000)


class BodyLimitMiddleware:
    """`max_body_bytes` on the declared Content-Length and on the bytes actually read (a chunked
    body has no length), before the app sees the body: 413 `payload_too_large` either way."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before sending its body: nothing to answer
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = PayloadTooLarge(f"the request body is larger than {self.max_body_bytes} bytes")
        # Close the connection: the rest of an oversized body is not worth reading.
        if openai_errors.is_openai_path(scope["path"]):
            response = openai_errors.from_yoi(error)
            response.headers["Connection"] = "close"
        else:
            response = error_response(error, {"Connection": "close"})
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """Hand the buffered body to the app once, then pass the real channel through (disconnects)."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        message: dict[str, Any] = dict(await receive())
        return message

    return replay
