"""The Python SDK of the Yoi Fleet gateway: `from gateway.client import Client, AsyncClient`.

Every route is a typed method returning the `shared` models; errors are the typed classes of
`shared.errors` (`WorkerBusy`, `CursorExpired`, …, each with `code` and `retryable`).
"""

from gateway.client._async import AsyncAnswerStream, AsyncClient
from gateway.client._errors import ConnectionFailed, UnexpectedResponse, UnknownApiError
from gateway.client._stream import Answer
from gateway.client._sync import AnswerStream, Client
from shared.errors import (
    CapacityExhausted,
    CursorExpired,
    InputIdConflict,
    InvalidInput,
    NotRunning,
    PayloadTooLarge,
    ProviderError,
    RateLimited,
    RunNotFound,
    RuntimeNotFound,
    RuntimeUnavailable,
    ScheduleNotFound,
    ScopeConflict,
    Timeout,
    Unauthorized,
    UnsupportedOperation,
    WorkerBusy,
    WorkerNotFound,
    WorkerStopped,
    YoiError,
)

__all__ = [
    "Answer",
    "AnswerStream",
    "AsyncAnswerStream",
    "AsyncClient",
    "CapacityExhausted",
    "Client",
    "ConnectionFailed",
    "CursorExpired",
    "InputIdConflict",
    "InvalidInput",
    "NotRunning",
    "PayloadTooLarge",
    "ProviderError",
    "RateLimited",
    "RunNotFound",
    "RuntimeNotFound",
    "RuntimeUnavailable",
    "ScheduleNotFound",
    "ScopeConflict",
    "Timeout",
    "Unauthorized",
    "UnexpectedResponse",
    "UnknownApiError",
    "UnsupportedOperation",
    "WorkerBusy",
    "WorkerNotFound",
    "WorkerStopped",
    "YoiError",
]
