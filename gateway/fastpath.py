"""The hottest requests without FastAPI's per-request work: `POST …/inputs`, the events long
poll `GET …/events`, and `POST …/workers` (create: a fleet's bulk path).

Routing through every route, solving the dependencies, validating and serializing through
FastAPI's layers cost more CPU than these requests themselves. This middleware (the innermost
one, inside the access log, auth and body limit) answers their common case: a known runtime, a
well-formed worker id, and a JSON body (inputs, create) or query (events) that validates. It
calls the routes' own code (`routes._shared`, `Runtime.create_worker`) and answers their bytes;
a store error becomes the same typed error response the exception handlers make. Anything else
(another content type, a body or query that does not validate or that FastAPI might read
differently, an unknown runtime, a malformed id) goes on to the route, with the body replayed,
so every edge answers exactly as the route does. The routes stay the ones declared for OpenAPI,
and the access log and metrics name them.
"""

from __future__ import annotations

import json
import re
from email.message import Message as MimeHeader
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import CLIENT_CLOSED_REQUEST, ClientGone, error_response
from gateway.routes import events, workers
from gateway.routes._shared import AFTER_PATTERN, MAX_WAIT_MS, long_poll, send_input
from gateway.state import Gateway
from runtime_worker.runtime import MAX_PAGE, Runtime
from shared.errors import YoiError
from shared.ids import is_worker_id
from shared.models import CreateWorker, SendInput

_Body = TypeVar("_Body", bound=BaseModel)

_HOT = re.compile(r"^/api/runtimes/([^/]+)/workers/([^/]+)/(inputs|events)$")
_CREATE = re.compile(r"^/api/runtimes/([^/]+)/workers$")
_NUMBER = re.compile(r"^[0-9]{1,6}$")
_AFTER = re.compile(AFTER_PATTERN)  # the events route's `after` (Query pattern)
DEFAULT_LIMIT = 100  # the events route's `limit` default


class HotRoutes:
    def __init__(self, app: ASGIApp, *, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway
        self._routes: dict[tuple[str, str], BaseRoute | None] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        create = _CREATE.match(scope["path"])
        if create is not None and scope["method"] == "POST":
            await self._create(scope, receive, send, create.group(1))
            return
        match = _HOT.match(scope["path"])
        if match is not None:
            runtime_id, worker_id, what = match.groups()
            if what == "inputs" and scope["method"] == "POST":
                await self._inputs(scope, receive, send, runtime_id, worker_id)
                return
            if what == "events" and scope["method"] == "GET":
                await self._events(scope, receive, send, runtime_id, worker_id)
                return
        await self.app(scope, receive, send)

    async def _inputs(
        self, scope: Scope, receive: Receive, send: Send, runtime_id: str, worker_id: str
    ) -> None:
        body, more = await _read_body(receive)
        runtime = self._runtime(runtime_id, worker_id) if more is None else None
        request = _json_body(scope, body, SendInput) if runtime is not None else None
        if runtime is None or request is None:
            await self.app(scope, _replay(body, more, receive), send)  # the route answers
            return
        scope["route"] = self._route(workers.router.routes, workers.INPUTS_ROUTE, "POST")
        try:
            accepted = await send_input(self.gateway, runtime, worker_id, request)
        except YoiError as exc:
            response: Response = error_response(exc)
        else:
            response = JSONResponse(accepted.model_dump(), status_code=202)
        await response(scope, receive, send)

    async def _events(
        self, scope: Scope, receive: Receive, send: Send, runtime_id: str, worker_id: str
    ) -> None:
        query = _events_query(scope.get("query_string", b""))
        runtime = self._runtime(runtime_id, worker_id) if query is not None else None
        if runtime is None or query is None:
            await self.app(scope, receive, send)  # the route answers
            return
        scope["route"] = self._route(events.router.routes, events.router.prefix + "/events", "GET")
        try:
            page = await long_poll(
                Request(scope, receive), self.gateway, runtime, worker_id, **query
            )
        except YoiError as exc:
            response: Response = error_response(exc)
        except ClientGone:
            response = Response(status_code=CLIENT_CLOSED_REQUEST)
        else:  # the route's serialization: its response model, `response_model_exclude_none`
            response = Response(
                page.model_dump_json(exclude_none=True), media_type="application/json"
            )
        await response(scope, receive, send)

    async def _create(self, scope: Scope, receive: Receive, send: Send, runtime_id: str) -> None:
        body, more = await _read_body(receive)
        runtime = self._runtime(runtime_id) if more is None else None
        request = _json_body(scope, body, CreateWorker) if runtime is not None else None
        if runtime is None or request is None:
            await self.app(scope, _replay(body, more, receive), send)  # the route answers
            return
        scope["route"] = self._route(workers.router.routes, workers.WORKERS, "POST")
        try:
            detail = await runtime.create_worker(request)
        except YoiError as exc:
            response: Response = error_response(exc)
        else:
            response = Response(
                detail.model_dump_json(), status_code=201, media_type="application/json"
            )
        await response(scope, receive, send)

    def _runtime(self, runtime_id: str, worker_id: str | None = None) -> Runtime | None:
        if worker_id is not None and not is_worker_id(worker_id):
            return None
        try:
            return self.gateway.runtimes().get(runtime_id)
        except YoiError:
            return None

    def _route(self, routes: list[BaseRoute], path: str, method: str) -> BaseRoute | None:
        """The declared route (the access log and metrics name it)."""
        key = (path, method)
        if key not in self._routes:
            found = (
                r
                for r in routes
                if getattr(r, "path", None) == path and method in getattr(r, "methods", ())
            )
            self._routes[key] = next(found, None)
        return self._routes[key]


def _json_body(scope: Scope, body: bytes, model: type[_Body]) -> _Body | None:
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
        return model.model_validate(json.loads(body))
    except (ValueError, ValidationError, RecursionError):  # nested too deeply: the route says so
        return None


def _events_query(raw: bytes) -> dict[str, Any] | None:
    """`after`, `limit` and `wait_ms` as the route would read them, or None for anything the
    route should judge (a repeated or empty parameter, a number out of range or not plain)."""
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    given = {name: value for name, value in pairs if name in ("after", "limit", "wait_ms")}
    if len(given) != sum(1 for name, _ in pairs if name in given):
        return None
    after = given.get("after")
    if after is not None and not _AFTER.fullmatch(after):
        return None
    numbers = {"limit": DEFAULT_LIMIT, "wait_ms": 0}
    for name, value in given.items():
        if name != "after":
            if not _NUMBER.match(value):
                return None
            numbers[name] = int(value)
    if not (1 <= numbers["limit"] <= MAX_PAGE and 0 <= numbers["wait_ms"] <= MAX_WAIT_MS):
        return None
    return {"after": after, **numbers}


async def _read_body(receive: Receive) -> tuple[bytes, Message | None]:
    """The whole body (the body-limit middleware has it buffered), or what was read before a
    message that is not body (a disconnect), with that message."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), None


def _replay(body: bytes, last: Message | None, receive: Receive) -> Receive:
    """Hand the read body to the route once, then what came after it, then the real channel."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": last is not None}]
    if last is not None:
        pending.append(last)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
