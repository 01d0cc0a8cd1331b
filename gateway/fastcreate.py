"""`POST /api/runtimes/{runtime_id}/workers` (create a Worker) without FastAPI's per-request work.

Creating thousands of Workers at once is a fleet's bulk path, and routing, dependencies,
validation and serialization through FastAPI cost more CPU than the create itself. This
middleware (innermost, beside `gateway.fastpath`, inside the access log, auth and body limit)
answers the common case: a known runtime and a JSON body that validates as `CreateWorker`. It
calls the route's own code (`Runtime.create_worker`) and answers the route's bytes; a store error
becomes the same typed error response the exception handlers make. Anything else goes on to the
route with the body replayed, so every edge answers exactly as the route does; the route stays
the one declared for OpenAPI, and the access log and metrics name it.
"""

from __future__ import annotations

import json
import re
from email.message import Message as MimeHeader

from pydantic import ValidationError
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import error_response
from gateway.fastpath import _read_body, _replay
from gateway.routes import workers
from gateway.state import Gateway
from runtime_worker.runtime import Runtime
from shared.errors import YoiError
from shared.models import CreateWorker

_CREATE = re.compile(r"^/api/runtimes/([^/]+)/workers$")


class CreateFastPath:
    def __init__(self, app: ASGIApp, *, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway
        self._declared: BaseRoute | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _CREATE.match(scope["path"]) if scope["type"] == "http" else None
        if match is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body, more = await _read_body(receive)
        runtime = self._runtime(match.group(1)) if more is None else None
        request = _create(scope, body) if runtime is not None else None
        if runtime is None or request is None:
            await self.app(scope, _replay(body, more, receive), send)  # the route answers
            return
        scope["route"] = self._route()
        try:
            detail = await runtime.create_worker(request)
        except YoiError as exc:
            response: Response = error_response(exc)
        else:
            response = Response(
                detail.model_dump_json(), status_code=201, media_type="application/json"
            )
        await response(scope, receive, send)

    def _runtime(self, runtime_id: str) -> Runtime | None:
        try:
            return self.gateway.runtimes().get(runtime_id)
        except YoiError:
            return None

    def _route(self) -> BaseRoute | None:
        """The declared route (the access log and metrics name it)."""
        if self._declared is None:
            found = (
                r for r in workers.router.routes if getattr(r, "path", None) == workers.WORKERS
            )
            self._declared = next((r for r in found if "POST" in getattr(r, "methods", ())), None)
        return self._declared


def _create(scope: Scope, body: bytes) -> CreateWorker | None:
    """The body as the route would read it (`application/json` only), or None."""
    content_type = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value.decode("latin-1")
    if not body or content_type is None:
        return None
    header = MimeHeader()
    header["content-type"] = content_type
    if header.get_content_type() != "application/json":
        return None
    try:
        return CreateWorker.model_validate(json.loads(body))
    except (ValueError, ValidationError):
        return None
