"""`yoi send` whose event stream drops mid-answer reconnects from its cursor (Last-Event-ID) and
prints the whole answer once: a real gateway behind a TCP proxy that cuts the stream once."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.cli.support import Lines, Stream, clean_env, finish, start, wait_ready, yoi
from tests.helpers import free_port
from tests.tcp_proxy import CuttingProxy

pytestmark = pytest.mark.slow

WORDS = [f"w{i}" for i in range(20)]


@contextmanager
def gateway_behind_proxy() -> Iterator[CuttingProxy]:
    port = free_port()
    env = clean_env(YOI_ECHO_DELAY_MS="100")
    gateway = start("gateway", "--port", str(port), env=env)
    logs = Lines(gateway.stderr)
    try:
        wait_ready(f"http://127.0.0.1:{port}")
        proxy = CuttingProxy(port, cut_after=3)
        try:
            yield proxy
        finally:
            proxy.close()
    finally:
        assert finish(gateway) == 0, logs.rest()


def test_a_dropped_stream_resumes_and_the_answer_prints_once_whole() -> None:
    with gateway_behind_proxy() as proxy:
        env = clean_env(YOI_GATEWAY=f"http://127.0.0.1:{proxy.port}")
        done = yoi("send", "companion@backend-internal", " ".join(WORDS), env=env)
    assert done.returncode == 0, done.stderr
    assert proxy.cuts == 1  # the stream really was cut mid-answer...
    assert done.stdout == "You said: " + " ".join(WORDS) + "\n"  # ...and nothing is missing
    assert len(proxy.stream_requests) == 2
    assert b"last-event-id: " in proxy.stream_requests[1].lower()  # resumed from its cursor


def test_ctrl_c_while_watching_exits_130_and_says_the_answer_goes_on() -> None:
    with gateway_behind_proxy() as proxy:
        env = clean_env(YOI_GATEWAY=f"http://127.0.0.1:{proxy.port}")
        watcher = start("send", "companion@backend-internal", " ".join(WORDS), env=env)
        assert watcher.stdout is not None
        out, err = Stream(watcher.stdout.fileno()), Lines(watcher.stderr)
        try:
            out.wait_for("You said: w0 ")  # the answer is streaming (no newline yet)
        finally:
            code = finish(watcher, signal.SIGINT)
    assert code == 130
    assert any("the answer goes on" in line for line in err.rest())
