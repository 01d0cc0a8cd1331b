"""The per-caller token bucket, with an injected clock: the burst, the refill, the wait it
reports, bounded memory, and callers told apart by a digest of their credential."""

from __future__ import annotations

from gateway import ratelimit
from gateway.ratelimit import RateLimiter, caller_of


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, 3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == 0.5  # one token back in 1/rate seconds
    assert limiter.take("b") == 0.0  # callers have buckets of their own
    clock.now += 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    clock.now += 60  # a long pause refills to the burst, never past it
    assert [limiter.take("a") for _ in range(4)][-1] > 0


def test_callers_are_bounded() -> None:
    limiter = RateLimiter(1.0, 1, clock=Clock())
    for i in range(ratelimit.MAX_CALLERS + 50):
        limiter.take(f"c{i}")
    assert len(limiter._buckets) == ratelimit.MAX_CALLERS
    assert limiter.take("c0") == 0.0  # the oldest was forgotten: a fresh bucket


def test_caller_is_a_digest_of_the_credential_never_the_secret() -> None:
    secret = b"Bearer very-secret-token"
    one = caller_of(
        {"type": "http", "headers": [(b"authorization", secret)], "client": ("1.2.3.4", 5)}
    )
    other = caller_of({"type": "http", "headers": [(b"authorization", b"Bearer other")]})
    assert one != other and "very-secret-token" not in one and one.startswith("c:")
    ticket = caller_of({"type": "http", "headers": [], "query_string": b"ticket=t1&after=0"})
    assert ticket.startswith("c:") and "t1" not in ticket
    assert caller_of({"type": "http", "headers": [], "client": ("1.2.3.4", 5)}) == "a:1.2.3.4"
