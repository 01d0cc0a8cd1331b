"""A TCP proxy in front of a real gateway that cuts the first event stream mid-answer, for the
tests of clients that resume from their cursor (`yoi send`, the SDK)."""

from __future__ import annotations

import socket
import threading
from contextlib import suppress


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
