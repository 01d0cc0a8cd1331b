"""When a call is sent again (the same rule for both clients): a connection that broke before
an answer (only calls that are safe to repeat, or that never left), with backoff; a 429 or 503
carrying `Retry-After`, after the wait it asks for, at most `REFUSALS` times and up to a total
wait; `on_wait` hears of each such wait (the CLI says so on stderr)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from gateway.client._calls import Call
from gateway.client._errors import not_sent, unreachable
from shared.errors import YoiError

RETRIES = 2
RETRY_WAIT_S = 30.0
BACKOFF_FIRST_S = 0.1
RETRY_AFTER_STATUSES = (429, 503)
REFUSALS = 5

OnWait = Callable[[YoiError, float, int], None]
"""Told (the refusal, the seconds about to be waited, which retry this is: 1, 2, ...)."""


@dataclass
class Retrying:
    gateway: str
    call: Call[Any]
    max_wait_s: float
    retries: int = RETRIES
    refusals: int = REFUSALS
    on_wait: OnWait | None = None
    failures: int = 0
    refused_times: int = 0
    waited_s: float = 0.0

    def broke(self, exc: httpx.TransportError) -> float:
        """The wait before sending again; raises `ConnectionFailed` when it should not."""
        self.failures += 1
        if self.failures > self.retries or not (self.call.idempotent or not_sent(exc)):
            raise unreachable(self.gateway, exc) from exc
        return BACKOFF_FIRST_S * 2.0**self.failures

    def refused(self, error: YoiError) -> float:
        """The `Retry-After` wait of a 429/503; re-raises `error` when there is none, after
        `refusals` retries, or when the total wait would pass `max_wait_s` (the error still
        carries `retry_after_s`)."""
        delay = error.retry_after_s
        if delay is None or error.http_status not in RETRY_AFTER_STATUSES:
            raise error
        if self.refused_times >= self.refusals or self.waited_s + delay > self.max_wait_s:
            raise error
        self.refused_times += 1
        self.waited_s += delay
        if self.on_wait is not None:
            self.on_wait(error, delay, self.refused_times)
        return delay
