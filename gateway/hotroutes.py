"""The hot routes dispatched straight to their endpoints, below every middleware of ours.

A `RequestRoute` (`gateway.requests`: POST inputs, the events long poll, POST create) is its own
handler: it takes the `Request` and answers a `Response`. Reaching it still cost Starlette's and
FastAPI's layers: the exception middleware, FastAPI's `AsyncExitStack` middleware, the router's
scan of every route (a regex per route, most of the table before the Worker routes), then per
request two more exit stacks and the exception wrapper around the endpoint. This layer, the
innermost of `create_app`'s middleware (after access log, auth, rate limit and body limit, so
all of them apply as before), finds a request's route in a table of only those routes and calls
the endpoint itself:

- the same route: a request goes here only when the router would have chosen the same route
  (no earlier route can match its path with its method; routes that could, `_may_shadow`, are
  asked at dispatch, and any of them matching sends the request down the ordinary way);
- the same scope: `route`, `endpoint`, `path_params` (converted) and `router` as the router
  sets them, so the access log and metrics name the same route template;
- the same errors: an exception is answered by the handler the app's exception middleware would
  have picked (by status for an `HTTPException`, else by the exception's class), and one
  without a handler propagates as it did, to the access log's typed 500.

Everything else (other routes, other methods, a 405) goes down the ordinary stack, unchanged.
The OpenAPI document is untouched: the routes stay registered as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from starlette._utils import get_route_path
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.requests import RequestRoute

_PARAM = re.compile(r"^\{[A-Za-z_][A-Za-z0-9_]*\}$")  # a whole segment `{name}`: `[^/]+`


@dataclass(frozen=True)
class _Hot:
    route: RequestRoute
    shadows: tuple[BaseRoute, ...]  # earlier routes that may match the same requests


@dataclass(frozen=True)
class _Table:
    size: int
    by_method: dict[str, tuple[_Hot, ...]]
    exception_handlers: dict[Any, Any]
    status_handlers: dict[int, Any]


def _may_shadow(earlier: BaseRoute, route: RequestRoute, method: str) -> bool:
    """False only when `earlier` surely matches none of `route`'s requests with `method`:
    a route of other methods (a partial match, which a later full one beats) or one whose
    template differs in a literal segment or in the number of segments. Anything else (a
    mount, a path converter, a segment mixing text and a parameter) is asked at dispatch."""
    if not isinstance(earlier, Route):
        return True
    if earlier.methods and method not in earlier.methods:
        return False
    mine, theirs = route.path.split("/"), earlier.path.split("/")
    if any(":" in part for part in (*mine, *theirs)) or len(mine) != len(theirs):
        return any(":" in part for part in (*mine, *theirs))  # a `{x:path}` spans segments
    for a, b in zip(mine, theirs, strict=True):
        if a == b or _PARAM.match(a) or _PARAM.match(b):
            continue
        # Text and a parameter in one segment is not judged here (asked at dispatch); two
        # different literals never match the same path.
        return "{" in a or "{" in b
    return True


def _table(app: Any) -> _Table:
    routes: list[BaseRoute] = list(app.router.routes)
    by_method: dict[str, list[_Hot]] = {}
    for index, route in enumerate(routes):
        if not isinstance(route, RequestRoute) or getattr(route, "max_body_size", None):
            continue
        for method in route.methods or ():
            shadows = tuple(r for r in routes[:index] if _may_shadow(r, route, method))
            by_method.setdefault(method, []).append(_Hot(route, shadows))
    exception_handlers: dict[Any, Any] = {}
    status_handlers: dict[int, Any] = {}
    for key, handler in app.exception_handlers.items():
        if key in (500, Exception):
            continue  # the server error middleware's, outside ours: not the router's
        if isinstance(key, int):
            status_handlers[key] = handler
        else:
            exception_handlers[key] = handler
    return _Table(
        size=len(routes),
        by_method={method: tuple(hot) for method, hot in by_method.items()},
        exception_handlers=exception_handlers,
        status_handlers=status_handlers,
    )


class HotRoutesMiddleware:
    """Pure ASGI; the innermost middleware. See the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._tables: dict[int, _Table] = {}

    def _table_of(self, app: Any) -> _Table:
        table = self._tables.get(id(app))
        if table is None or table.size != len(app.router.routes):
            table = self._tables[id(app)] = _table(app)
        return table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope.get("app") if scope["type"] == "http" else None
        if app is None:
            await self.app(scope, receive, send)
            return
        table = self._table_of(app)
        candidates = table.by_method.get(scope["method"])
        if candidates:
            path = get_route_path(scope)
            for hot in candidates:
                route = hot.route
                found = route.path_regex.match(path)
                if found is None:
                    continue
                if any(r.matches(scope)[0] == Match.FULL for r in hot.shadows):
                    break  # the router would pick an earlier route: let it
                params = dict(scope.get("path_params", {}))
                convertors = route.param_convertors
                for key, value in found.groupdict().items():
                    params[key] = convertors[key].convert(value)
                scope["endpoint"] = route.endpoint
                scope["path_params"] = params
                scope["route"] = route
                scope.setdefault("router", app.router)
                await self._answer(table, route, scope, receive, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    async def _answer(
        table: _Table, route: RequestRoute, scope: Scope, receive: Receive, send: Send
    ) -> None:
        request = Request(scope, receive, send)
        try:
            response = await route.endpoint(request)
        except Exception as exc:
            handler = None
            if isinstance(exc, HTTPException):
                handler = table.status_handlers.get(exc.status_code)
            if handler is None:
                for cls in type(exc).__mro__:
                    handler = table.exception_handlers.get(cls)
                    if handler is not None:
                        break
            if handler is None:
                raise
            response = await handler(request, exc)
            exc.__traceback__ = None  # as Starlette does: a reused exception keeps no frames
        await response(scope, receive, send)


__all__ = ["HotRoutesMiddleware"]
