"""The SDK's errors: the gateway's typed errors are `shared.errors` classes (`WorkerBusy`,
`CursorExpired`, …, each with `code` and `retryable`); three more say what went wrong on the
client's side of the wire."""

from __future__ import annotations

import json
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

import httpx
from pydantic import ValidationError

from shared.errors import ALL_ERRORS, CursorExpired, ErrorEnvelope, YoiError
from shared.logs import redact_url
from shared.timeutil import now_s

ERROR_BY_CODE: dict[str, type[YoiError]] = {cls.code: cls for cls in ALL_ERRORS}


class ConnectionFailed(YoiError):
    """The gateway could not be reached, or the connection broke, and retrying did not help."""

    code = "connection_failed"
    http_status = 503
    retryable_default = True

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out  # connected, but no answer came within the timeout


class UnexpectedResponse(YoiError):
    """The gateway answered something that is not its API (a proxy's page, a newer shape)."""

    code = "unexpected_response"
    http_status = 502


class UnknownApiError(YoiError):
    """A typed error whose code this SDK predates; `wire_code` is the code the gateway sent."""

    def __init__(self, wire_code: str, message: str, *, retryable: bool, status: int) -> None:
        super().__init__(message, retryable=retryable)
        self.wire_code = wire_code
        self.status = status


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """`Retry-After` in seconds (delta-seconds or an HTTP date); None when absent or bad."""
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(raw).timestamp() - now_s())
    except (TypeError, ValueError):
        return None


def error_from(status: int, headers: Mapping[str, str], content: bytes) -> YoiError:
    """The typed error of an error response (`{"error": {code, message, retryable}}`)."""
    try:
        body = ErrorEnvelope.model_validate_json(content).error
    except ValidationError:
        return UnexpectedResponse(f"the gateway answered HTTP {status} without a typed error")
    error: YoiError
    cls = ERROR_BY_CODE.get(body.code)
    if cls is CursorExpired:
        oldest = _oldest_cursor(content)
        error = CursorExpired(body.message, oldest_cursor=oldest)
        error.retryable = body.retryable
    elif cls is not None:
        error = cls(body.message, retryable=body.retryable)
    else:
        error = UnknownApiError(body.code, body.message, retryable=body.retryable, status=status)
    error.retry_after_s = retry_after_s(headers)
    return error


def _oldest_cursor(content: bytes) -> str:
    try:
        value = json.loads(content)["error"].get("oldest_cursor")
    except (ValueError, KeyError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


def unreachable(gateway: str, exc: Exception) -> ConnectionFailed:
    """The gateway's address (its credentials redacted) and what happened, never the token."""
    timed_out = isinstance(exc, httpx.TimeoutException)
    what = "did not answer in time" if timed_out else "cannot be reached"
    return ConnectionFailed(f"the gateway at {redact_url(gateway)} {what}", timed_out=timed_out)


def not_sent(exc: httpx.TransportError) -> bool:
    """The request never left: connecting failed, so sending it again cannot duplicate it."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
