"""`gateway.protocol`: the same bytes on the wire as uvicorn's own httptools protocol, with a
sized answer's head and body in one write. Real uvicorn servers on real sockets, side by side."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.protocol import CoalescingHttpToolsProtocol
from tests.helpers import wait_until

WAIT_S = 10.0


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Sized answers, a HEAD, a chunked stream, a failure after the head, 100-continue."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if path == "/stream":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        for n in range(3):
            await send(
                {"type": "http.response.body", "body": b"data: %d\n\n" % n, "more_body": True}
            )
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    if path == "/fail-after-head":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]}
        )
        raise RuntimeError("failed after the head")
    if path == "/empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    answer = b'{"echo":"' + body + b'","path":"' + path.encode() + b'"}'
    await send(
        {
            "type": "http.response.start",
            "status": 202,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(answer)),
            ],
        }
    )
    if scope["method"] != "HEAD":
        await send({"type": "http.response.body", "body": answer})
    else:
        await send({"type": "http.response.body", "body": b""})


@contextlib.asynccontextmanager
async def serving(protocol: type[HttpToolsProtocol]) -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        http=protocol,
        log_config=None,
        access_log=False,
        server_header=False,
        date_header=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:

        async def started() -> bool:
            return bool(server.started)

        await wait_until(started, timeout_s=WAIT_S, what="uvicorn started")
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT_S)
        sock.close()


async def exchange(port: int, raw: bytes, *, continue_then: bytes | None = None) -> bytes:
    """Send `raw` and read until the server closes (every request ends `Connection: close`)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        if continue_then is not None:
            async with asyncio.timeout(WAIT_S):
                interim = await reader.readuntil(b"\r\n\r\n")
            writer.write(continue_then)
        else:
            interim = b""
        async with asyncio.timeout(WAIT_S):
            return interim + await reader.read()
    finally:
        writer.close()


def post(path: str, body: bytes, *extra: bytes) -> bytes:
    head = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % (path.encode(), len(body))
    return head + b"".join(extra) + b"Connection: close\r\n\r\n"


REQUESTS: dict[str, bytes] = {
    "sized POST": post("/inputs", b"hello") + b"hello",
    "HEAD": b"HEAD /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "chunked stream": b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "failure after the head": b"GET /fail-after-head HTTP/1.1\r\nHost: x\r\n\r\n",
    "204": b"GET /empty HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "pipelined keep-alive": (
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ),
    "HTTP/1.0": b"GET /old HTTP/1.0\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("name", list(REQUESTS))
async def test_the_same_bytes_as_uvicorns_own_protocol(name: str) -> None:
    async with serving(HttpToolsProtocol) as plain, serving(CoalescingHttpToolsProtocol) as ours:
        expected = await exchange(plain, REQUESTS[name])
        got = await exchange(ours, REQUESTS[name])
    assert got == expected
    assert expected.startswith(b"HTTP/1.")


async def test_100_continue_is_sent_before_the_body_is_read() -> None:
    request = post("/inputs", b"later", b"Expect: 100-continue\r\n")
    async with serving(HttpToolsProtocol) as plain, serving(CoalescingHttpToolsProtocol) as ours:
        expected = await exchange(plain, request, continue_then=b"later")
        got = await exchange(ours, request, continue_then=b"later")
    assert got == expected
    assert got.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202")


class Writes(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def closed(transport: Writes) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return transport.closed

    return check


async def test_a_sized_answer_is_one_write_and_a_stream_is_not_held() -> None:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    config = Config(app, http=CoalescingHttpToolsProtocol, log_config=None)
    config.load()
    transport = Writes()
    transport.get_extra_info = lambda name, default=None: (  # type: ignore[method-assign]
        ("127.0.0.1", 1) if name in ("sockname", "peername") else default
    )
    protocol = CoalescingHttpToolsProtocol(config, ServerState(), {})
    protocol.connection_made(transport)
    protocol.data_received(post("/inputs", b"hi") + b"hi")
    await wait_until(closed(transport), timeout_s=WAIT_S, what="the answer")
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 202") and transport.writes[0].endswith(
        b'"path":"/inputs"}'
    )

    streamed = Writes()
    streamed.get_extra_info = transport.get_extra_info  # type: ignore[method-assign]
    protocol = CoalescingHttpToolsProtocol(config, ServerState(), {})
    protocol.connection_made(streamed)
    protocol.data_received(b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await wait_until(closed(streamed), timeout_s=WAIT_S, what="the stream")
    assert streamed.writes[0].startswith(b"HTTP/1.1 200") and streamed.writes[0].endswith(
        b"\r\n\r\n"
    )
    assert len(streamed.writes) == 5  # the head, three frames, the last chunk
