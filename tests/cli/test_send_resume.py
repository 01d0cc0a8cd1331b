"""`yoi send` whose event stream drops mid-answer reconnects from its cursor (Last-Event-ID) and
prints the whole answer once: a real gateway behind a TCP proxy that cuts the stream once."""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest

from tests.cli.support import Lines, Stream, clean_env, finish, start, wait_ready, yoi
from tests.helpers import free_port

pytestmark = pytest.mark.slow

WORDS = [f"w{i}" for i in range(20)]


class CuttingProxy:
    """Forwards TCP to `upstream`; the first connection that carries an event stream is cut
    (both ways, abruptly) once `cut_after` text deltas went through it."""

    def __init__(self, upstream: int, cut_after: int) -> None:
        self.upstream = upstream
        self.cut_after = cut_after
        self.cuts = 0
        self.stream_requests: list[bytes] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stopping = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            state = {"stream": False, "cut_me": False}
            threading.Thread(target=self._up, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, state), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, state: dict[str, bool]) -> None:
        while chunk := _recv(client):
            if b"/events/stream" in chunk:
                with self._lock:
                    self.stream_requests.append(chunk)
                    state["stream"] = True
                    state["cut_me"] = self.cuts == 0
            server.sendall(chunk)
        _close(client, server)

    def _down(self, server: socket.socket, client: socket.socket, state: dict[str, bool]) -> None:
        deltas = 0
        while chunk := _recv(server):
            if state["cut_me"]:
                deltas += chunk.count(b"event: text_delta")
                if deltas >= self.cut_after:
                    with self._lock:
                        self.cuts += 1
                        state["cut_me"] = False
                    break  # dropped: what was read in this chunk never reaches the client
            client.sendall(chunk)
        _close(client, server)

    def close(self) -> None:
        self._stopping = True
        self._listener.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(*socks: socket.socket) -> None:
    """Shut down first: a thread blocked in `recv` on the same socket wakes only then."""
    for sock in socks:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


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
