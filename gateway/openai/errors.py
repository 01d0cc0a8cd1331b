"""Errors under `/v1` in OpenAI's shape `{"error": {message, type, param, code}}`.

The official clients pick their exception class from the HTTP status and show `message`, so the
status follows OpenAI's conventions where they differ from ours (an invalid request is 400, not
422; a model that names no profile, runtime or Worker is 404 `model_not_found`), `code` keeps
our typed code for everything else (`worker_busy`, `runtime_unavailable`, ...), and `type` is
OpenAI's family of the status. A 429 (the request rate limit, or a Worker's queue bound) is
OpenAI's own `rate_limit_exceeded`, and every refusal that says when to come back carries its
`Retry-After` (the official clients wait it out before retrying).
"""

from __future__ import annotations

from starlette.responses import JSONResponse

from shared.errors import (
    InvalidInput,
    RateLimited,
    RuntimeNotFound,
    Unauthorized,
    WorkerNotFound,
    YoiError,
)
from shared.openai import OpenAIError, OpenAIErrorBody

PREFIX = "/v1/"
RETRY_AFTER_S = 1
"""What a retryable 409/429/503 asks a client to wait when the refusal names no wait itself."""
RATE_LIMIT_CODE = "rate_limit_exceeded"


def is_openai_path(path: str) -> bool:
    return path.startswith(PREFIX)


def _type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def openai_error(
    status: int,
    message: str,
    *,
    code: str | None,
    param: str | None = None,
    retry_after_s: int | None = None,
) -> JSONResponse:
    body = OpenAIError(
        error=OpenAIErrorBody(message=message, type=_type(status), param=param, code=code)
    )
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status in (409, 429, 503):
        headers["Retry-After"] = str(retry_after_s or RETRY_AFTER_S)
    return JSONResponse(body.payload(), status_code=status, headers=headers)


def from_yoi(exc: YoiError, *, param: str | None = None) -> JSONResponse:
    """Our typed error, restated for an OpenAI client."""
    if isinstance(exc, Unauthorized):
        return openai_error(401, exc.message, code="invalid_api_key")
    if isinstance(exc, (RuntimeNotFound, WorkerNotFound)):
        return openai_error(404, exc.message, code="model_not_found", param="model")
    if isinstance(exc, InvalidInput):
        return openai_error(400, exc.message, code=exc.code, param=param)
    retry_after_s: int | None = getattr(exc, "retry_after_s", None)
    if isinstance(exc, RateLimited):
        return openai_error(429, exc.message, code=RATE_LIMIT_CODE, retry_after_s=retry_after_s)
    return openai_error(
        exc.http_status, exc.message, code=exc.code, param=param, retry_after_s=retry_after_s
    )


def internal_error(message: str) -> JSONResponse:
    return openai_error(500, message, code="internal_error")


__all__ = ["from_yoi", "internal_error", "is_openai_path", "openai_error"]
