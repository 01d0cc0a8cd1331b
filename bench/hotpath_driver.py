"""A minimal in-process ASGI driver for CPU benchmarks: one request is one call of the app with
a prepared scope, so the process time spent is the gateway's (no sockets, no HTTP client)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message


@dataclass
class Answer:
    """What the app sent back: its status and the body bytes."""

    status: int = 0
    body: bytearray = field(default_factory=bytearray)


async def call(
    app: ASGIApp, method: str, path: str, query: bytes = b"", body: bytes = b""
) -> Answer:
    """One request through the whole ASGI stack (middleware, routing, endpoint)."""
    headers: list[tuple[bytes, bytes]] = [(b"host", b"gateway.bench")]
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    answer = Answer()
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:  # the client stays: a second receive waits (until the app cancels it)
            await asyncio.get_running_loop().create_future()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
        elif message["type"] == "http.response.body":
            answer.body += message.get("body", b"")

    await app(scope, receive, send)
    return answer
