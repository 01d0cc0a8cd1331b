"""Typed errors: each gateway error code raises its `shared.errors` class with `retryable`;
bad input is refused before anything is sent; 429/503 with `Retry-After` are waited out."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

import pytest

from gateway.client import (
    Client,
    ConnectionFailed,
    CursorExpired,
    InputIdConflict,
    InvalidInput,
    PayloadTooLarge,
    RateLimited,
    RuntimeNotFound,
    RuntimeUnavailable,
    Unauthorized,
    UnexpectedResponse,
    UnknownApiError,
    WorkerBusy,
    WorkerNotFound,
    WorkerStopped,
)
from gateway.client._errors import retry_after_s
from gateway.client._retry import RETRY_WAIT_S
from shared.ids import new_id
from shared.models import WorkerState
from tests.helpers import free_port, wait_until_sync
from tests.sdk.conftest import TOKEN, Gateway

pytestmark = pytest.mark.slow

E = TypeVar("E", bound=Exception)


@pytest.fixture
def client(gateway: Gateway) -> Iterator[Client]:
    with Client(gateway.url, TOKEN) as client:
        yield client


def test_unauthorized_not_found_and_connection_failed(gateway: Gateway, client: Client) -> None:
    with Client(gateway.url, "wrong-token") as stranger, pytest.raises(Unauthorized) as caught:
        stranger.list_runtimes()
    assert (caught.value.code, caught.value.retryable) == ("unauthorized", False)
    with pytest.raises(RuntimeNotFound):
        client.get_runtime("no-such-runtime")
    with pytest.raises(WorkerNotFound) as missing:
        client.get_worker("fleet", new_id())
    assert missing.value.code == "worker_not_found"
    nowhere = Client(f"http://user:pw@127.0.0.1:{free_port()}", TOKEN)
    with nowhere, pytest.raises(ConnectionFailed) as down:
        nowhere.health()
    assert down.value.retryable is True
    assert "pw" not in down.value.message and TOKEN not in down.value.message


def test_busy_stopped_too_large_and_invalid(client: Client) -> None:
    worker = client.create_worker("fleet", "erin")
    long_text = " ".join(f"w{i}" for i in range(100))  # 100 pieces at 20 ms: 2 s of answer
    client.send("fleet", worker.worker_id, long_text, input_id="erin-1")
    with pytest.raises(InputIdConflict):  # the same key with another text: the first stands
        client.send("fleet", worker.worker_id, "another text", input_id="erin-1")
    with pytest.raises(WorkerBusy) as busy:
        client.send("fleet", worker.worker_id, "me too", strategy="reject")
    assert (busy.value.code, busy.value.retryable) == ("worker_busy", True)

    with pytest.raises(PayloadTooLarge):
        client.send("fleet", worker.worker_id, "x" * 40_000, strategy="enqueue")
    with pytest.raises(InvalidInput):  # an unknown profile: the gateway's 422
        client.create_worker("fleet", "frank", profile="no-such-profile")

    before = client.events("fleet", worker.worker_id, limit=1000).events
    for bad in (
        lambda: client.send("fleet", worker.worker_id, ""),  # empty text
        lambda: client.send("fleet", worker.worker_id, "hi", strategy="sideways"),
        lambda: client.send("fleet", worker.worker_id, "hi", input_id="bad id!"),
        lambda: client.create_worker("fleet", "no spaces allowed"),
    ):
        with pytest.raises(InvalidInput):
            bad()
    after = client.events("fleet", worker.worker_id, limit=1000).events
    assert [e for e in after if e.type == "user_message"] == [
        e for e in before if e.type == "user_message"
    ]  # refused before sending: nothing was added

    client.stop("fleet", worker.worker_id)
    wait_until_sync(
        lambda: client.get_worker("fleet", worker.worker_id).state == WorkerState.STOPPED,
        timeout_s=15,
        what="the worker to stop",
    )
    with pytest.raises(WorkerStopped):
        client.send("fleet", worker.worker_id, "anyone there?", strategy="enqueue")


def test_a_trimmed_cursor_is_cursor_expired_with_the_oldest(client: Client) -> None:
    worker = client.create_worker("fleet", "gina")
    first = client.send("fleet", worker.worker_id, "first").cursor
    page = client.events("fleet", worker.worker_id, after=first, wait_ms=5000)
    old = page.events[0].cursor
    for index in range(12):  # past the window of 40 events (YOI_EVENTS_MAXLEN)
        client.send_and_stream("fleet", worker.worker_id, f"message {index}").wait()
    with pytest.raises(CursorExpired) as expired:
        client.events("fleet", worker.worker_id, after=old)
    assert expired.value.code == "cursor_expired" and expired.value.oldest_cursor
    resumed = client.events("fleet", worker.worker_id, after=expired.value.oldest_cursor)
    assert resumed.events
    stream = client.stream("fleet", worker.worker_id, after=old)
    with pytest.raises(CursorExpired):  # a gap cannot be hidden: raised, not retried
        next(stream)


# -- a stub server for what a gateway does not answer today ----------------------------------


@contextmanager
def stub(answers: list[tuple[int, dict[str, str], bytes]]) -> Iterator[tuple[str, list[float]]]:
    """A real HTTP server on loopback answering `answers` in order (the last one repeats)."""
    times: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            times.append(time.monotonic())
            status, headers, body = answers[min(len(times), len(answers)) - 1]
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", times
    finally:
        server.shutdown()
        server.server_close()


def envelope(code: str, retryable: bool) -> bytes:
    return json.dumps({"error": {"code": code, "message": code, "retryable": retryable}}).encode()


def test_retry_after_is_waited_out_then_the_answer_returned() -> None:
    answers = [
        (429, {"Retry-After": "0.3"}, envelope("rate_limited", True)),
        (503, {"Retry-After": "0.2"}, envelope("capacity_exhausted", True)),
        (200, {}, b'{"status": "ok"}'),
    ]
    with stub(answers) as (url, times), Client(url) as client:
        assert client.health().status == "ok"
    assert len(times) == 3
    assert times[1] - times[0] >= 0.3 and times[2] - times[1] >= 0.2


def raised(
    answers: list[tuple[int, dict[str, str], bytes]],
    expected: type[E],
    retry_wait_s: float = RETRY_WAIT_S,
) -> tuple[E, int]:
    """The error `health()` raises against a stub answering `answers`, and the requests made."""
    with (
        stub(answers) as (url, times),
        Client(url, retry_wait_s=retry_wait_s) as client,
        pytest.raises(expected) as caught,
    ):
        client.health()
    return caught.value, len(times)


def test_a_retry_after_past_the_budget_raises_with_it() -> None:
    too_long = [(503, {"Retry-After": "100"}, envelope("runtime_unavailable", True))]
    error, requests = raised(too_long, RuntimeUnavailable, retry_wait_s=30)
    assert error.retry_after_s == 100 and requests == 1
    # No Retry-After: not retried.
    no_header: list[tuple[int, dict[str, str], bytes]] = [(429, {}, envelope("rate_limited", True))]
    assert raised(no_header, RateLimited)[1] == 1


def test_retry_after_is_waited_out_at_most_refusals_times_each_one_told() -> None:
    always = [(429, {"Retry-After": "0.1"}, envelope("rate_limited", True))]
    told: list[tuple[str, float, int]] = []
    with (
        stub(always) as (url, times),
        Client(url, refusals=2, on_wait=lambda e, s, n: told.append((e.code, s, n))) as client,
        pytest.raises(RateLimited),
    ):
        client.health()
    assert len(times) == 3  # the first try and two retries
    assert told == [("rate_limited", 0.1, 1), ("rate_limited", 0.1, 2)]


def test_unknown_codes_and_foreign_answers() -> None:
    unknown, _ = raised([(418, {}, envelope("teapot", False))], UnknownApiError)
    assert (unknown.wire_code, unknown.status) == ("teapot", 418)
    raised([(200, {}, b"<html>a proxy</html>")], UnexpectedResponse)
    raised([(502, {}, b"Bad Gateway")], UnexpectedResponse)


def test_retry_after_forms() -> None:
    assert retry_after_s({"retry-after": "3"}) == 3.0
    assert retry_after_s({}) is None
    assert retry_after_s({"retry-after": "soon"}) is None
    in_an_hour = retry_after_s({"retry-after": formatdate(time.time() + 3600, usegmt=True)})
    assert in_an_hour is not None and 3590 < in_an_hour <= 3600
