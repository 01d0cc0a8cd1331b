"""What the hot routes (inputs, the events long poll, create) read and write, without FastAPI's
per-request machinery: they take the `Request`, validate its body or query in one pydantic
step, and write their response once; a `RequestRoute` makes such an endpoint its own handler.
FastAPI's own handling (a JSON decode and a validation per parameter, solving dependencies,
then the response model's validation and `jsonable_encoder`) costs several times what these
requests do. `gateway.openapi.declare` states what they read, so the schema is the same.

The other routes keep FastAPI's parameters: for them the cost does not matter.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from email.message import Message
from typing import Any, TypeVar

from fastapi import APIRouter
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import TOO_DEEP_MESSAGE, describe
from gateway.state import Gateway
from runtime_worker.runtime import Runtime
from shared.errors import InvalidInput, WorkerNotFound
from shared.ids import is_worker_id

Model = TypeVar("Model", bound=BaseModel)
Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]


class RequestRoute(APIRoute):
    """A route whose endpoint takes the `Request` and answers its `Response` itself, so it is
    its own handler: FastAPI's (solving an empty set of dependencies, then a response model's
    validation) is left out. OpenAPI declares it as any route (`gateway.openapi.declare`)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        d = self.dependant
        if d.path_params or d.query_params or d.header_params or d.cookie_params:
            raise TypeError(f"{path}: a RequestRoute reads its parameters itself")
        if d.body_params or d.dependencies or self.body_field is not None:
            raise TypeError(f"{path}: a RequestRoute has no body parameter nor dependencies")

    def get_route_handler(self) -> Endpoint:
        endpoint: Endpoint = self.endpoint
        return endpoint


def request_route(
    router: APIRouter, path: str, method: str, **options: Any
) -> Callable[[Endpoint], Endpoint]:
    """`@router.post(path, **options)` for an endpoint that is its own handler."""

    def register(endpoint: Endpoint) -> Endpoint:
        router.add_api_route(
            path, endpoint, methods=[method], route_class_override=RequestRoute, **options
        )
        return endpoint

    return register


JSON = "application/json"


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def runtime_of(gateway: Gateway, runtime_id: str) -> Runtime:
    """The path's runtime; unknown or malformed ids are 404 `runtime_not_found`."""
    return gateway.runtimes().get(runtime_id)


def checked_worker_id(worker_id: str) -> str:
    """A malformed id names no Worker: 404 `worker_not_found` rather than 422."""
    if not is_worker_id(worker_id):
        raise WorkerNotFound("malformed worker id")
    return worker_id


@functools.lru_cache(maxsize=64)
def _is_json(content_type: str | None) -> bool:
    """Parsed as email parses it (parameters, case, comments); clients send the same few
    values, so each is parsed once (the parse was a fifth of an input POST's CPU)."""
    if not content_type:
        return False
    header = Message()
    header["content-type"] = content_type
    subtype = header.get_content_subtype()
    return header.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


async def read_json(request: Request, model: type[Model]) -> Model:
    """The body as `model`: JSON (`application/json` or `…+json`), decoded and validated in one
    step (pydantic's own JSON parser, which also bounds nesting). 422 `invalid_input` else."""
    if not _is_json(request.headers.get("content-type")):
        raise InvalidInput(f"body: the body must be JSON (Content-Type: {JSON})")
    body = await request.body()
    if not body:
        raise InvalidInput("body: Field required")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_input=False)
        if any(_too_deep(error) for error in errors):
            raise InvalidInput(TOO_DEEP_MESSAGE) from None  # as FastAPI's routes say it
        raise InvalidInput(describe(errors, "body")) from None


def _too_deep(error: ErrorDetails) -> bool:
    reason = str(error.get("ctx", {}).get("error", ""))
    return error["type"] == "json_invalid" and reason.startswith("recursion limit exceeded")


def read_query(request: Request, model: type[Model]) -> Model:
    """The query string as `model` in one validation (a repeated parameter: its last value)."""
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise InvalidInput(describe(exc.errors(include_input=False), "query")) from None


def json_response(
    model: BaseModel, status_code: int = 200, *, exclude_none: bool = False
) -> Response:
    """The model serialized once, by pydantic, straight to bytes."""
    content = model.model_dump_json(exclude_none=exclude_none)
    return Response(content, status_code=status_code, media_type=JSON)
