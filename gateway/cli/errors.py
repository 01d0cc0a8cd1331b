"""Exit codes of `yoi` and the one exception that carries them to the shell.

Scripts branch on the code; people read the message, so each message says what to do next.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from shared.logs import redact_url

P = ParamSpec("P")
R = TypeVar("R")

OK = 0
FAILED = 1  # an API error, or an answer that did not finish (failed, timed out, cancelled)
USAGE = 2  # click's own code for bad flags and arguments
UNREACHABLE = 3
NOT_FOUND = 4
BUSY = 5
UNAUTHORIZED = 6
OVERLOADED = 7  # 429 / 503 with Retry-After, still refused after the retries
INTERRUPTED = 130  # the shell's convention for Ctrl-C

EXIT_CODES_HELP = f"""\b
Exit codes:
  {OK}  success
  {FAILED}  API error, or the answer failed, timed out or was cancelled
  {USAGE}  usage error (bad flag, argument or reference)
  {UNREACHABLE}  the gateway cannot be reached
  {NOT_FOUND}  unknown runtime, worker or schedule
  {BUSY}  the worker is busy answering
  {UNAUTHORIZED}  missing or wrong API token
  {OVERLOADED}  still rate limited or out of capacity after waiting out Retry-After
  {INTERRUPTED}  interrupted (Ctrl-C)

Global options (--gateway, --token) go before or after the command."""

# API error codes with an exit code of their own; every other code exits FAILED.
EXIT_BY_API_CODE: dict[str, int] = {
    "runtime_not_found": NOT_FOUND,
    "worker_not_found": NOT_FOUND,
    "schedule_not_found": NOT_FOUND,
    "worker_busy": BUSY,
    "unauthorized": UNAUTHORIZED,
    "rate_limited": OVERLOADED,
    "capacity_exhausted": OVERLOADED,
}


class CliFailure(Exception):
    """A failure a person can act on: `main` prints `yoi: message` and exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class ApiError(CliFailure):
    """A typed error answered by the gateway (`{"error": {code, message, retryable}}`)."""

    def __init__(self, code: str, message: str, *, status: int) -> None:
        super().__init__(f"{message} ({code})", EXIT_BY_API_CODE.get(code, FAILED))
        self.code = code
        self.status = status


def unreachable(gateway: str) -> CliFailure:
    return CliFailure(
        f"cannot reach the gateway at {redact_url(gateway)} — is `yoi up` running?", UNREACHABLE
    )


def busy(ref: str) -> CliFailure:
    return CliFailure(f"the worker is busy answering; try again or `yoi cancel {ref}`", BUSY)


def unauthorized() -> CliFailure:
    return CliFailure("the gateway refused the request: set --token or YOI_API_TOKEN", UNAUTHORIZED)


def interruptible(command: Callable[P, R]) -> Callable[P, R]:
    """Ctrl-C anywhere in `command` exits 130 (click alone says "Aborted!" and exits 1)."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            raise CliFailure("interrupted", INTERRUPTED) from None

    return wrapper
