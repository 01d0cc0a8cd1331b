"""A real HTTP/1.1 server speaking the chat-completions streaming wire format, scripted per test.

It runs on the test's own event loop over a real socket. Each request takes the next scripted
`Behaviour` (a plain success once the script runs out) and is recorded, including whether the
client hung up before the response ended, so tests can prove that a cancel aborts the request.
Responses use chunked transfer encoding: an abrupt close then reads as a broken stream, not as a
normal end of body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Self

DEFAULT_CHUNKS = ("Hello", ", ", "world", "!")


@dataclass(frozen=True)
class Behaviour:
    """What the server does with one request."""

    status: int = 200
    chunks: tuple[str, ...] = DEFAULT_CHUNKS
    disconnect_after: int | None = None  # abort the socket after this many content chunks
    chunk_delay_s: float = 0.0
    error_message: str = "fake failure"
    retry_after: str | None = None  # the `Retry-After` header of an error answer
    hang_up: bool = False  # close the connection without answering a byte

    @classmethod
    def fail(
        cls, status: int, message: str = "fake failure", retry_after: str | None = None
    ) -> Behaviour:
        return cls(status=status, error_message=message, retry_after=retry_after)

    @classmethod
    def unanswered(cls) -> Behaviour:
        """What a client sees sending on a kept-alive connection the server just closed."""
        return cls(hang_up=True)

    @classmethod
    def disconnect(cls, after: int) -> Behaviour:
        return cls(disconnect_after=after)

    @classmethod
    def slow(cls, delay_s: float, count: int = 100) -> Behaviour:
        return cls(chunks=tuple(f"t{i} " for i in range(count)), chunk_delay_s=delay_s)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: dict[str, Any]
    finished: bool = False  # the whole response was sent
    client_closed: bool = False  # the client hung up before the response was finished


@dataclass
class FakeOpenAIServer:
    host: str = "127.0.0.1"
    behaviours: deque[Behaviour] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def script(self, *behaviours: Behaviour) -> None:
        self.behaviours.extend(behaviours)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_connection, self.host, 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve_one(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; the record already says so
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await _read_request(reader)
        self.requests.append(request)
        behaviour = self.behaviours.popleft() if self.behaviours else Behaviour()
        watcher = asyncio.create_task(_watch_hangup(reader, request))
        try:
            if behaviour.hang_up:
                writer.transport.abort()
            elif request.method != "POST" or not request.path.endswith("/chat/completions"):
                await _send_json(writer, 404, _error_body("no such route"))
            elif behaviour.status != 200:
                body = _error_body(behaviour.error_message)
                await _send_json(writer, behaviour.status, body, behaviour.retry_after)
            else:
                await _stream_answer(writer, request, behaviour)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)


async def _read_request(reader: asyncio.StreamReader) -> RecordedRequest:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    request_line, *header_lines = head.rstrip("\r\n").split("\r\n")
    method, path, _version = request_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    raw = await reader.readexactly(int(headers.get("content-length", "0")))
    body: dict[str, Any] = json.loads(raw) if raw else {}
    return RecordedRequest(method=method, path=path, headers=headers, body=body)


async def _watch_hangup(reader: asyncio.StreamReader, request: RecordedRequest) -> None:
    """The client sends nothing after its request, so EOF here means it closed the connection."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(4096):
            pass
    if not request.finished:
        request.client_closed = True


def _error_body(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "fake_error", "param": None, "code": None}}


async def _send_json(
    writer: asyncio.StreamWriter,
    status: int,
    payload: dict[str, Any],
    retry_after: str | None = None,
) -> None:
    data = json.dumps(payload).encode()
    extra = f"retry-after: {retry_after}\r\n" if retry_after is not None else ""
    writer.write(
        f"HTTP/1.1 {status} Fake\r\ncontent-type: application/json\r\n{extra}"
        f"content-length: {len(data)}\r\nconnection: close\r\n\r\n".encode()
        + data
    )
    await writer.drain()


def _chunk(model: str, delta: dict[str, str], finish_reason: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [choice],
    }


async def _send_event(writer: asyncio.StreamWriter, data: str) -> None:
    """One SSE event as one HTTP chunk."""
    event = f"data: {data}\n\n".encode()
    writer.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
    await writer.drain()


async def _stream_answer(
    writer: asyncio.StreamWriter, request: RecordedRequest, behaviour: Behaviour
) -> None:
    model = str(request.body.get("model", ""))
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )
    await _send_event(writer, json.dumps(_chunk(model, {"role": "assistant", "content": ""})))
    for index, text in enumerate(behaviour.chunks):
        if index == behaviour.disconnect_after:
            writer.transport.abort()
            return
        if index and behaviour.chunk_delay_s:
            await asyncio.sleep(behaviour.chunk_delay_s)  # settle-ok: a slow model is the test
        if request.client_closed:
            return
        await _send_event(writer, json.dumps(_chunk(model, {"content": text})))
    if behaviour.disconnect_after is not None:
        writer.transport.abort()
        return
    await _send_event(writer, json.dumps(_chunk(model, {}, finish_reason="stop")))
    prompt_words = sum(len(str(m.get("content", "")).split()) for m in request.body["messages"])
    usage = {
        "prompt_tokens": prompt_words,
        "completion_tokens": len(behaviour.chunks),
        "total_tokens": prompt_words + len(behaviour.chunks),
    }
    final = {**_chunk(model, {}), "choices": [], "usage": usage}
    await _send_event(writer, json.dumps(final))
    await _send_event(writer, "[DONE]")
    request.finished = True
    writer.write(b"0\r\n\r\n")
    await writer.drain()
