"""Every error the gateway answers has the SPEC body `{"error": {code, message, retryable}}`.

Codes and their HTTP statuses are the SPEC table's, never anything else, so a client can switch
on `code` alone. Decisions where the table is silent:

- An unknown path is 404 `not_found` and a method a path does not allow is 405
  `method_not_allowed` (the `Allow` header lists the methods): codes of their own, added to the
  table, so a client tells a typo in a route from an unknown runtime or Worker.
- A body FastAPI cannot read (malformed JSON, JSON nested deeper than the decoder follows) is
  422 `invalid_input`, never a 400 or a 500.
- A malformed `runtime_id` or `worker_id` in a path names nothing: 404 `runtime_not_found` or
  `worker_not_found` (see `gateway.deps`).
- `cursor_expired` adds `oldest_cursor` to the error object: where the reader may resume.
- Request validation names the fields and what is wrong, never echoes the input.
- Anything unexpected is a 500 `internal_error` with a generic message; the log gets the
  exception's type name only (no traceback, so no source path nor a value from a frame).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from gateway.openai import errors as openai_errors
from shared.errors import (
    CursorExpired,
    ErrorBody,
    ErrorEnvelope,
    InvalidInput,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    YoiError,
)

log = logging.getLogger("yoi.gateway")

CLIENT_CLOSED_REQUEST = 499  # nginx's convention: logged and counted, read by nobody
MAX_REPORTED_ERRORS = 5
INTERNAL_MESSAGE = "the gateway failed to answer this request"
TOO_DEEP_MESSAGE = "the JSON body is nested too deeply"

_DESCRIPTIONS = {
    401: "`unauthorized`: a valid bearer token is required",
    404: "`runtime_not_found`, `worker_not_found`, or `not_found` (no such route)",
    405: "`method_not_allowed`: the `Allow` header lists the path's methods",
    409: "`worker_busy`, `worker_stopped`, `scope_conflict` or `not_running`",
    410: "`cursor_expired`: the error carries `oldest_cursor`",
    413: "`payload_too_large`: the body or the text is too long",
    422: "`invalid_input`: the request is malformed",
    429: "`rate_limited`",
    500: "`internal_error`: the gateway failed; nothing about why is revealed",
    501: "`unsupported_operation`",
    503: "`runtime_unavailable` or `capacity_exhausted`",
}


class ClientGone(Exception):
    """The client left while its request waited (a long poll): nobody reads the answer."""


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=`: each status declared with the error envelope model."""
    return {
        status: {"model": ErrorEnvelope, "description": _DESCRIPTIONS[status]}
        for status in statuses
    }


def error_body(exc: YoiError) -> dict[str, Any]:
    body = exc.body().model_dump()
    if isinstance(exc, CursorExpired):
        body["error"]["oldest_cursor"] = exc.oldest_cursor
    return body


def error_response(exc: YoiError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The typed body; a refusal that says when to come back (429, 503) adds `Retry-After`."""
    retry_after_s = getattr(exc, "retry_after_s", None)
    if retry_after_s is not None:
        headers = {**(headers or {}), "Retry-After": str(retry_after_s)}
    return JSONResponse(error_body(exc), status_code=exc.http_status, headers=headers)


def internal_error_body() -> dict[str, Any]:
    body = ErrorBody(code="internal_error", message=INTERNAL_MESSAGE, retryable=True)
    return ErrorEnvelope(error=body).model_dump()


def describe(errors: Sequence[Any], where: str = "") -> str:
    """`body.text: Field required; query.limit: ...`: where and what, never the input itself.
    `where` prefixes locations that do not name their part of the request themselves."""
    parts = []
    for error in errors[:MAX_REPORTED_ERRORS]:
        loc = ".".join(str(part) for part in (where, *error.get("loc", ())) if part != "")
        parts.append(f"{loc or 'request'}: {error.get('msg', 'invalid')}")
    if len(errors) > MAX_REPORTED_ERRORS:
        parts.append(f"and {len(errors) - MAX_REPORTED_ERRORS} more")
    return "; ".join(parts) or "the request is invalid"


def validation_message(exc: RequestValidationError) -> str:
    return describe(exc.errors())


def _respond(request: Request, exc: YoiError, headers: dict[str, str] | None = None) -> Response:
    """Our envelope, or OpenAI's under `/v1` (its clients read only that)."""
    if openai_errors.is_openai_path(request.url.path):
        return openai_errors.from_yoi(exc)
    return error_response(exc, headers)


async def _yoi_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, YoiError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    return _respond(request, exc, headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    error = InvalidInput(validation_message(exc))
    if openai_errors.is_openai_path(request.url.path):
        return openai_errors.from_yoi(error, param=_first_field(exc))
    return error_response(error)


def _first_field(exc: RequestValidationError) -> str | None:
    """OpenAI's `param`: the first invalid body field (`messages.0.role`)."""
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ())]
        if loc[:1] == ["body"] and len(loc) > 1:
            return ".".join(loc[1:])
    return None


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (no route, wrong method) and FastAPI's 400 (unreadable body)."""
    assert isinstance(exc, StarletteHTTPException)
    route = f"{request.method} {request.url.path}"[:200]
    if openai_errors.is_openai_path(request.url.path) and exc.status_code in (404, 405):
        # OpenAI's own answer to a wrong URL: 404/405 `invalid_request_error`.
        found = "no such route" if exc.status_code == 404 else "method not allowed"
        response = openai_errors.openai_error(exc.status_code, f"{found}: {route}", code=None)
        if exc.headers and "allow" in {k.lower() for k in exc.headers}:
            response.headers["Allow"] = next(
                v for k, v in exc.headers.items() if k.lower() == "allow"
            )
        return response
    if exc.status_code == 404:
        error: YoiError = NotFound(f"no such route: {route}")
    elif exc.status_code == 405:
        error = MethodNotAllowed(f"method not allowed: {route}")
    elif exc.status_code == 413:
        error = PayloadTooLarge("the request body is too large")
    elif exc.status_code == 401:
        error = Unauthorized("a valid bearer token is required")
    elif isinstance(exc.__cause__, RecursionError):
        error = InvalidInput(TOO_DEEP_MESSAGE)
    else:
        error = InvalidInput("the request could not be read")
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() == "allow"}
    return _respond(request, error, headers or None)


async def _client_gone(request: Request, exc: Exception) -> Response:
    return Response(status_code=CLIENT_CLOSED_REQUEST)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ClientGone, _client_gone)
    app.add_exception_handler(YoiError, _yoi_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
