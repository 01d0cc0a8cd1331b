"""The typed error hierarchy of SPEC section 5: one base carrying code, message and retryable."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


def _code_enum(schema: dict[str, Any]) -> None:
    """OpenAPI lists every code a client may switch on; parsing stays open to newer codes."""
    schema["properties"]["code"]["enum"] = [*(cls.code for cls in ALL_ERRORS), "internal_error"]


class ErrorBody(BaseModel):
    model_config = ConfigDict(json_schema_extra=_code_enum)

    code: str
    message: str
    retryable: bool


class ErrorEnvelope(BaseModel):
    """The body of every error response: `{"error": {...}}`."""

    error: ErrorBody


class YoiError(Exception):
    """Base of every domain error; `code` and `http_status` are the wire contract."""

    code: ClassVar[str] = "internal_error"
    http_status: ClassVar[int] = 500
    retryable_default: ClassVar[bool] = False
    # Seconds the server asked to wait (`Retry-After` of a 429/503), as a client received it.
    retry_after_s: float | None = None

    def __init__(self, message: str, *, retryable: bool | None = None, **details: str) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = self.retryable_default if retryable is None else retryable
        self.details = details

    def body(self) -> ErrorEnvelope:
        return ErrorEnvelope(
            error=ErrorBody(code=self.code, message=self.message, retryable=self.retryable)
        )


class InvalidInput(YoiError):
    code = "invalid_input"
    http_status = 422


class Unauthorized(YoiError):
    code = "unauthorized"
    http_status = 401


class RuntimeNotFound(YoiError):
    code = "runtime_not_found"
    http_status = 404


class WorkerNotFound(YoiError):
    code = "worker_not_found"
    http_status = 404


class NotFound(YoiError):
    """No route at this path: a typo or an old client, told apart from an unknown id."""

    code = "not_found"
    http_status = 404


class MethodNotAllowed(YoiError):
    """The path exists but not with this method; the response's `Allow` header lists those."""

    code = "method_not_allowed"
    http_status = 405


class RunNotFound(YoiError):
    code = "run_not_found"
    http_status = 404


class ScheduleNotFound(YoiError):
    code = "schedule_not_found"
    http_status = 404


class WorkerBusy(YoiError):
    code = "worker_busy"
    http_status = 409
    retryable_default = True


class NotRunning(YoiError):
    code = "not_running"
    http_status = 409


class ScopeConflict(YoiError):
    code = "scope_conflict"
    http_status = 409


class WorkerStopped(YoiError):
    code = "worker_stopped"
    http_status = 409


class InputIdConflict(YoiError):
    """An `input_id` the Worker knows was sent again with another text: the first text stands
    and nothing changes (the same id with the same text is the idempotent same answer)."""

    code = "input_id_conflict"
    http_status = 409


class CursorExpired(YoiError):
    """The cursor fell off the trimmed window; `oldest_cursor` is where a reader may resume."""

    code = "cursor_expired"
    http_status = 410

    def __init__(self, message: str, *, oldest_cursor: str) -> None:
        super().__init__(message, oldest_cursor=oldest_cursor)
        self.oldest_cursor = oldest_cursor


class PayloadTooLarge(YoiError):
    code = "payload_too_large"
    http_status = 413


class _RetryLater(YoiError):
    """A refusal that says when to come back: `retry_after_s` becomes the `Retry-After` header."""

    retryable_default = True

    def __init__(
        self, message: str, *, retryable: bool | None = None, retry_after_s: int = 1
    ) -> None:
        super().__init__(message, retryable=retryable)
        self.retry_after_s = max(1, retry_after_s)


class RateLimited(_RetryLater):
    code = "rate_limited"
    http_status = 429


class UnsupportedOperation(YoiError):
    code = "unsupported_operation"
    http_status = 501


class ProviderError(YoiError):
    code = "provider_error"
    http_status = 502
    retryable_default = True


class RuntimeUnavailable(YoiError):
    code = "runtime_unavailable"
    http_status = 503
    retryable_default = True


class CapacityExhausted(_RetryLater):
    code = "capacity_exhausted"
    http_status = 503


class Timeout(YoiError):
    code = "timeout"
    http_status = 504
    retryable_default = True


class LeaseLost(Exception):
    """A member's write was fenced off: another member holds the worker now. Not a wire error."""


ALL_ERRORS: tuple[type[YoiError], ...] = (
    InvalidInput,
    Unauthorized,
    RuntimeNotFound,
    WorkerNotFound,
    NotFound,
    MethodNotAllowed,
    RunNotFound,
    ScheduleNotFound,
    WorkerBusy,
    NotRunning,
    ScopeConflict,
    WorkerStopped,
    InputIdConflict,
    CursorExpired,
    PayloadTooLarge,
    RateLimited,
    UnsupportedOperation,
    ProviderError,
    RuntimeUnavailable,
    CapacityExhausted,
    Timeout,
)
