"""A minimal HTTP/1.1 client for loopback measurements.

httpx costs about a millisecond of client CPU per request here, which would swamp the
sub-millisecond paths we measure; this keep-alive client costs tens of microseconds, and the
same client drives Yoi and every peer, so client overhead cancels out of the ratios.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

READ_LIMIT = 1 << 24
REQUEST_TIMEOUT_S = 30.0


class HttpError(Exception):
    """A non-2xx answer; the body is kept because Yoi's typed errors explain themselves."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:300].decode(errors='replace')}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _request_bytes(method: str, path: str, host: str, body: bytes | None, extra: str) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n{extra}"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + (body or b"")


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # trailer end (we send no TE: trailers)
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


class Connection:
    """One keep-alive connection; reconnects once when the server closed it between requests."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(
            self.host, self.port, limit=READ_LIMIT
        )

    async def request(
        self, method: str, path: str, body: Any = None, timeout_s: float = REQUEST_TIMEOUT_S
    ) -> Response:
        """One request/response; a server that does not answer within `timeout_s` costs the
        connection and raises TimeoutError, so no measuring loop can hang."""
        try:
            async with asyncio.timeout(timeout_s):
                return await self._exchange(method, path, body)
        except TimeoutError:
            await self.close()
            raise

    async def _exchange(self, method: str, path: str, body: Any) -> Response:
        payload = None if body is None else json.dumps(body).encode()
        data = _request_bytes(method, path, f"{self.host}:{self.port}", payload, "")
        for attempt in (1, 2):
            if self._writer is None or self._writer.is_closing():
                await self._connect()
            assert self._reader is not None and self._writer is not None
            try:
                self._writer.write(data)
                status, headers = await _read_head(self._reader)
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt == 2:
                    raise
                continue
            if headers.get("transfer-encoding", "").lower() == "chunked":
                content = await _read_chunked(self._reader)
            else:
                content = await self._reader.readexactly(int(headers.get("content-length", "0")))
            if headers.get("connection", "").lower() == "close":
                await self.close()
            return Response(status, headers, content)
        raise AssertionError("unreachable")

    async def json(self, method: str, path: str, body: Any = None) -> Any:
        """The decoded body of a 2xx answer; anything else raises `HttpError`."""
        response = await self.request(method, path, body)
        if not 200 <= response.status < 300:
            raise HttpError(response.status, response.body)
        return response.json()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


class Pool:
    """N connections shared by concurrent tasks, so setup work (creating 10,000 Workers) runs
    with bounded concurrency against one server."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self._idle: asyncio.Queue[Connection] = asyncio.Queue()
        self._all = [Connection(host, port) for _ in range(size)]
        for conn in self._all:
            self._idle.put_nowait(conn)

    async def json(self, method: str, path: str, body: Any = None) -> Any:
        conn = await self._idle.get()
        try:
            return await conn.json(method, path, body)
        finally:
            self._idle.put_nowait(conn)

    async def close(self) -> None:
        await asyncio.gather(*(conn.close() for conn in self._all))


@dataclass(frozen=True)
class SseEvent:
    id: str | None
    event: str
    data: bytes

    def json(self) -> Any:
        return json.loads(self.data)


class _Dechunker:
    """Incremental `Transfer-Encoding: chunked` decoder for a stream that never ends by itself."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._remaining = 0
        self.done = False

    def feed(self, data: bytes) -> bytes:
        self._buf += data
        out = bytearray()
        while not self.done:
            if self._remaining > 0:
                take = min(self._remaining, len(self._buf))
                out += self._buf[:take]
                del self._buf[:take]
                self._remaining -= take
                if self._remaining > 0:
                    break
                self._remaining = -2  # the CRLF closing this chunk is still to come
            if self._remaining == -2:
                if len(self._buf) < 2:
                    break
                del self._buf[:2]
                self._remaining = 0
            end = self._buf.find(b"\r\n")
            if end < 0:
                break
            size = int(bytes(self._buf[:end]).split(b";", 1)[0], 16)
            del self._buf[: end + 2]
            if size == 0:
                self.done = True
            self._remaining = size
        return bytes(out)


def _parse_message(message: bytes) -> SseEvent | None:
    event_id: str | None = None
    event = "message"
    data: list[bytes] = []
    for line in message.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"id":
            event_id = value.decode()
        elif name == b"event":
            event = value.decode()
        elif name == b"data":
            data.append(value)
    if event_id is None and not data:
        return None  # a comment-only heartbeat
    return SseEvent(event_id, event, b"\n".join(data))


class SseStream:
    """A Server-Sent Events subscription read off a raw socket; `events()` yields parsed
    messages and ends when the server closes the stream."""

    def __init__(self, host: str, port: int, path: str, post: Any = None) -> None:
        """`post`: a JSON body to POST instead of a GET (servers that stream a run's answer
        in reply to the request that starts it)."""
        self.host = host
        self.port = port
        self.path = path
        self.post = None if post is None else json.dumps(post).encode()
        self.status = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._chunked = False

    async def open(self, last_event_id: str | None = None) -> None:
        """Connect and read the response head; a non-200 answer raises `HttpError`."""
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                await self._open(last_event_id)
        except TimeoutError:
            await self.close()
            raise

    async def _open(self, last_event_id: str | None) -> None:
        self._reader, self._writer = await asyncio.open_connection(
            self.host, self.port, limit=READ_LIMIT
        )
        extra = "Accept: text/event-stream\r\nCache-Control: no-cache\r\n"
        if last_event_id is not None:
            extra += f"Last-Event-ID: {last_event_id}\r\n"
        method = "GET" if self.post is None else "POST"
        self._writer.write(_request_bytes(method, self.path, self.host, self.post, extra))
        self.status, headers = await _read_head(self._reader)
        if self.status != 200:
            body = await self._reader.read(4096)
            await self.close()
            raise HttpError(self.status, body)
        self._chunked = headers.get("transfer-encoding", "").lower() == "chunked"

    async def events(self) -> AsyncIterator[SseEvent]:
        assert self._reader is not None
        dechunk = _Dechunker() if self._chunked else None
        pending = b""
        while True:
            data = await self._reader.read(1 << 16)
            if not data:
                return
            if dechunk is not None:
                data = dechunk.feed(data)
            # sse-starlette ends lines with CRLF; a CR left at the end of `pending` meets its LF
            # in the next read, so normalising the joined buffer is enough.
            buf = (pending + data).replace(b"\r\n", b"\n")
            messages = buf.split(b"\n\n")
            pending = messages.pop()
            for message in messages:
                parsed = _parse_message(message)
                if parsed is not None:
                    yield parsed
            if dechunk is not None and dechunk.done:
                return

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None
