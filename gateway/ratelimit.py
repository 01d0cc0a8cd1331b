"""An optional request rate limit per API caller (`YOI_RATE_LIMIT_PER_S`, `YOI_RATE_LIMIT_BURST`):
a token bucket per caller, refilled at the rate, holding at most the burst. A request finding
its bucket empty answers 429 `rate_limited` with `Retry-After` (the seconds until one token is
back) and reaches nothing else.

The caller is its credential (the bearer token or stream ticket, kept only as a digest, never
the secret itself), else its client address. Only `/api/` and the OpenAI facade's `/v1/` are
limited (one bucket per caller across both; under `/v1/` the 429 is in OpenAI's shape, code
`rate_limit_exceeded`): probes, metrics and the console's files are not. Buckets are bounded
(least recently used dropped first), so a flood of distinct callers cannot grow memory.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import error_response
from gateway.openai import errors as openai_errors
from shared.errors import RateLimited

MAX_CALLERS = 10_000
LIMITED_PREFIXES = ("/api/", openai_errors.PREFIX)


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(
        self, rate_per_s: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, caller: str) -> float:
        """0 when the caller may go on (one token taken); else seconds until it may."""
        now = self._clock()
        bucket = self._buckets.pop(caller, None) or _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate_per_s)
        bucket.at = now
        self._buckets[caller] = bucket
        while len(self._buckets) > MAX_CALLERS:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate_per_s


def caller_of(scope: Scope) -> str:
    """A digest of the caller's credential, else its address: never the secret itself."""
    credential = b""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            credential = value
            break
    if not credential:
        ticket = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("ticket")
        credential = ticket[0].encode() if ticket else b""
    if credential:
        return "c:" + hashlib.blake2b(credential, digest_size=16).hexdigest()
    client = scope.get("client")
    return f"a:{client[0]}" if client else "a:unknown"


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, *, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(LIMITED_PREFIXES):
            await self.app(scope, receive, send)
            return
        wait_s = self.limiter.take(caller_of(scope))
        if wait_s == 0:
            await self.app(scope, receive, send)
            return
        error = RateLimited("too many requests: slow down", retry_after_s=math.ceil(wait_s))
        if openai_errors.is_openai_path(scope["path"]):
            await openai_errors.from_yoi(error)(scope, receive, send)
            return
        await error_response(error)(scope, receive, send)
