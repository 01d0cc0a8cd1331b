"""A webhook receiver for the tests: a real HTTP server on a real socket, in a thread, that
verifies every delivery with `standardwebhooks` and keeps what it got. `stop()` closes the
socket (a sender is refused), `start()` listens on the same port again."""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook

from tests.helpers import free_port

SECRET = "whsec_" + base64.b64encode(b"yoi-webhook-test-secret-32-bytes").decode()


@dataclass
class Delivery:
    webhook_id: str
    body: dict[str, Any]
    path: str


@dataclass
class Receiver:
    port: int = field(default_factory=free_port)
    secret: str = SECRET
    status: int = 200
    deliveries: list[Delivery] = field(default_factory=list)
    rejected: int = 0  # bodies whose signature did not verify
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def ids(self) -> set[str]:
        with self._lock:
            return {d.webhook_id for d in self.deliveries}

    def got(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    def start(self) -> Receiver:
        receiver = self
        verifier = Webhook(self.secret)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                try:
                    body = verifier.verify(raw, dict(self.headers.items()))
                except Exception:
                    with receiver._lock:
                        receiver.rejected += 1
                    self.send_response(400)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                with receiver._lock:
                    receiver.deliveries.append(
                        Delivery(
                            self.headers["webhook-id"], json.loads(json.dumps(body)), self.path
                        )
                    )
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
