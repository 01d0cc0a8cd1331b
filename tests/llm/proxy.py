"""A tiny HTTP/1.1 proxy in front of llama-server that can answer for it: inject a 429/503 with a
`Retry-After`, or cut an answer off after some bytes, then pass everything else through.

It runs on the test's event loop over real sockets. One request per connection (the proxy asks
upstream for `connection: close`), which is all the `openai` client needs here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Self


@dataclass(frozen=True)
class Inject:
    """Answer one request in place of the server."""

    status: int
    retry_after: str | None = None
    message: str = "injected by the test proxy"


@dataclass(frozen=True)
class CutAfter:
    """Forward the request, then hang up after `body_bytes` of the server's answer body."""

    body_bytes: int


@dataclass
class LlamaProxy:
    upstream_port: int
    script: deque[Inject | CutAfter] = field(default_factory=deque)
    requests: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        assert self._server is not None, "proxy not started"
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._on_connection, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop listening (the server looks down from here on) and end open exchanges."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head, body = await _read_request(reader)
            self.requests += 1
            step = self.script.popleft() if self.script else None
            if isinstance(step, Inject):
                await _answer(writer, step)
            else:
                await self._forward(head, body, writer, step)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # either side hung up: what a test provokes on purpose
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _forward(
        self, head: bytes, body: bytes, writer: asyncio.StreamWriter, cut: CutAfter | None
    ) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        try:
            up_writer.write(_close_after(head) + body)
            await up_writer.drain()
            response_head = await up_reader.readuntil(b"\r\n\r\n")
            writer.write(response_head)
            sent = 0
            while chunk := await up_reader.read(4096):
                if cut is not None and sent + len(chunk) >= cut.body_bytes:
                    writer.write(chunk[: cut.body_bytes - sent])
                    await writer.drain()
                    writer.transport.abort()
                    return
                sent += len(chunk)
                writer.write(chunk)
                await writer.drain()
        finally:
            up_writer.close()
            with contextlib.suppress(ConnectionError):
                await up_writer.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return head, await reader.readexactly(length)


def _close_after(head: bytes) -> bytes:
    """The same request head with `connection: close`, so the answer ends with the socket."""
    lines = [
        line
        for line in head.decode("latin-1").rstrip("\r\n").split("\r\n")
        if not line.lower().startswith("connection:")
    ]
    return ("\r\n".join([*lines, "connection: close"]) + "\r\n\r\n").encode("latin-1")


async def _answer(writer: asyncio.StreamWriter, step: Inject) -> None:
    data = json.dumps({"error": {"message": step.message, "type": "injected"}}).encode()
    extra = f"retry-after: {step.retry_after}\r\n" if step.retry_after is not None else ""
    writer.write(
        f"HTTP/1.1 {step.status} Injected\r\ncontent-type: application/json\r\n{extra}"
        f"content-length: {len(data)}\r\nconnection: close\r\n\r\n".encode()
        + data
    )
    await writer.drain()
