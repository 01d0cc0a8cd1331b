"""Exponential backoff for a member's loops while Redis is away: no hot retry, no log flood."""

from __future__ import annotations

import logging
import random

FIRST_DELAY_S = 0.05
MAX_DELAY_S = 2.0


class Backoff:
    """One loop's retry delay: doubles per failure up to `MAX_DELAY_S`, resets on success.
    Logs the first failure and the recovery, not every retry."""

    def __init__(self, what: str, log: logging.Logger) -> None:
        self.what = what
        self.log = log
        self.failures = 0

    def failed(self, reason: str) -> float:
        """Record a failure; the delay to wait before the next try."""
        if self.failures == 0:
            self.log.warning("%s paused: %s; retrying with backoff", self.what, reason)
        self.failures += 1
        delay: float = min(MAX_DELAY_S, FIRST_DELAY_S * 2.0 ** min(self.failures - 1, 16))
        return delay * random.uniform(0.8, 1.0)  # members restarted together do not retry in step

    def succeeded(self) -> bool:
        """Record a success; True when it ends a run of failures (Redis is back)."""
        recovered = self.failures > 0
        if recovered:
            self.log.info("%s resumed after %d failed tries", self.what, self.failures)
        self.failures = 0
        return recovered
