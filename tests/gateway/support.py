"""Driving the gateway in-process: the app with its lifespan, an httpx client over ASGI, and a
raw ASGI stream for SSE (httpx's ASGI transport buffers a whole response, so a stream that
never ends would never answer; this one hands each chunk over as it is sent, can stop reading
like a slow client, and disconnects when told)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, MutableMapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.app import create_app
from gateway.state import Gateway
from runtime_worker.runtime import Runtime
from runtime_worker.store.base import EventMux
from shared.errors import YoiError
from shared.events import Event, EventPage
from shared.settings import Settings
from tests.gateway.sse_parser import Message, SseParser

ROUTE_TIMEOUT_S = 10.0
BI = "/api/runtimes/backend-internal"


@contextlib.asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gateway.test", timeout=ROUTE_TIMEOUT_S
        ) as client:
            yield app, client


def state(app: FastAPI) -> Gateway:
    gateway: Gateway = app.state.gateway
    return gateway


async def create_worker(client: httpx.AsyncClient, name: str = "w", **extra: Any) -> str:
    response = await client.post(f"{BI}/workers", json={"display_name": name, **extra})
    assert response.status_code == 201, response.text
    return str(response.json()["worker_id"])


async def events_until(
    client: httpx.AsyncClient,
    path: str,
    after: str | None,
    predicate: Callable[[list[dict[str, Any]]], bool],
    *,
    timeout_s: float = 10.0,
) -> list[dict[str, Any]]:
    """Long-poll the events route from `after` until `predicate(all events so far)` holds."""
    seen: list[dict[str, Any]] = []
    cursor = after
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate(seen):
        assert loop.time() < deadline, f"events never satisfied the predicate: {seen}"
        params: dict[str, Any] = {"wait_ms": 1000}
        if cursor is not None:
            params["after"] = cursor
        response = await client.get(path, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        seen.extend(page["events"])
        cursor = page["cursor"]
    return seen


def finished(input_id: str) -> Callable[[list[dict[str, Any]]], bool]:
    def check(events: list[dict[str, Any]]) -> bool:
        return any(e["type"] == "run_finished" and e.get("input_id") == input_id for e in events)

    return check


class AsgiStream:
    """One streaming GET against the app, chunk by chunk."""

    def __init__(self, app: FastAPI, url: str, headers: dict[str, str] | None = None) -> None:
        path, _, query = url.partition("?")
        raw_headers = [(b"host", b"gateway.test")]
        raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": query.encode(),
            "headers": raw_headers,
            "client": ("127.0.0.1", 50000),
            "server": ("gateway.test", 80),
        }
        self.app = app
        self.parser = SseParser()
        self.status: int | None = None
        self.body = b""
        self.ended = asyncio.Event()
        self.reading = asyncio.Event()  # cleared: the client stops reading, sends block
        self.reading.set()
        self._started = asyncio.Event()
        self._chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self._leave = asyncio.Event()
        self._request_sent = False
        self._task: asyncio.Task[None] | None = None

    async def _receive(self) -> dict[str, Any]:
        if not self._request_sent:
            self._request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._leave.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self._started.set()
            return
        await self.reading.wait()
        chunk = message.get("body", b"")
        self.body += chunk
        if chunk:
            self._chunks.put_nowait(chunk)
        if not message.get("more_body", False):
            self.ended.set()

    async def _run(self) -> None:
        try:
            await self.app(self.scope, self._receive, self._send)
        finally:
            self.ended.set()
            self._started.set()

    async def open(self, *, wait_for_headers: bool = True) -> AsgiStream:
        self._task = asyncio.create_task(self._run())
        if wait_for_headers:
            await asyncio.wait_for(self._started.wait(), ROUTE_TIMEOUT_S)
        return self

    def answered(self) -> bool:
        return self.status is not None

    async def next_messages(self, timeout_s: float = 10.0) -> list[Message]:
        """Wait for the next chunk and parse it (an empty list for a comment-only chunk)."""
        if self._chunks.empty():
            async with asyncio.timeout(timeout_s):
                chunk = await self._chunks.get()
        else:
            chunk = self._chunks.get_nowait()
        return self.parser.feed(chunk)

    async def read_until(
        self, predicate: Callable[[list[Message]], bool], timeout_s: float = 10.0
    ) -> list[Message]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not predicate(self.parser.messages):
            remaining = deadline - loop.time()
            assert remaining > 0, f"stream never satisfied the predicate: {self.parser.messages}"
            if self.ended.is_set() and self._chunks.empty():
                raise AssertionError(f"stream ended early: {self.parser.messages}")
            with contextlib.suppress(TimeoutError):
                await self.next_messages(min(remaining, 0.5))
        return self.parser.messages

    async def drain_to_end(self, timeout_s: float = 10.0) -> list[Message]:
        await asyncio.wait_for(self.ended.wait(), timeout_s)
        while not self._chunks.empty():
            self.parser.feed(self._chunks.get_nowait())
        return self.parser.messages

    async def close(self) -> None:
        """Disconnect, as a browser closing the tab; returns once the app has let go."""
        self._leave.set()
        self.reading.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, ROUTE_TIMEOUT_S)

    async def __aenter__(self) -> AsgiStream:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def open_stream(app: FastAPI, url: str, headers: dict[str, str] | None = None) -> AsgiStream:
    return AsgiStream(app, url, headers)


def event_payloads(messages: list[Message]) -> list[dict[str, Any]]:
    return [m.json() for m in messages if m.event != "error"]


class BlockingReads:
    """Counts concurrent blocking reads (long-polling `Runtime.events` calls, `Runtime.tail`
    calls, and reads of the event muxes made from now on, each one reader however many
    Workers it follows): the store readers at work."""

    def __init__(self, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 0
        self.most = 0
        real = runtime.events
        real_tail = runtime.tail

        async def counted(
            worker_id: str, *, after: str | None = None, limit: int = 100, wait_ms: int = 0
        ) -> EventPage:
            blocking = wait_ms > 0
            self.now += blocking
            self.most = max(self.most, self.now)
            try:
                return await real(worker_id, after=after, limit=limit, wait_ms=wait_ms)
            finally:
                self.now -= blocking

        async def counted_tail(
            worker_id: str, *, after: str, limit: int, wait_ms: int
        ) -> EventPage:
            self.now += 1
            self.most = max(self.most, self.now)
            try:
                return await real_tail(worker_id, after=after, limit=limit, wait_ms=wait_ms)
            finally:
                self.now -= 1

        real_mux = runtime.event_mux

        def counted_mux() -> EventMux | None:
            mux = real_mux()
            if mux is not None:
                real_read = mux.read

                async def counted_read(
                    cursors: Mapping[str, str], limit: int, timeout_ms: int
                ) -> dict[str, list[Event] | YoiError]:
                    self.now += 1
                    self.most = max(self.most, self.now)
                    try:
                        return await real_read(cursors, limit, timeout_ms)
                    finally:
                        self.now -= 1

                monkeypatch.setattr(mux, "read", counted_read)
            return mux

        monkeypatch.setattr(runtime, "events", counted)
        monkeypatch.setattr(runtime, "tail", counted_tail)
        monkeypatch.setattr(runtime, "event_mux", counted_mux)


def ran(input_id: str) -> Callable[[list[Message]], bool]:
    """A stream predicate: this input's `run_finished` arrived."""

    def check(messages: list[Message]) -> bool:
        return any(
            m.event == "run_finished" and m.json().get("input_id") == input_id for m in messages
        )

    return check


def settings_for(namespace: str, **overrides: Any) -> Settings:
    """Settings independent of the environment the tests run in."""
    values: dict[str, Any] = {
        "namespace": namespace,
        "host": "127.0.0.1",
        "api_token": None,
        "redis_url": None,
        "fleets": [],
        "cors_origins": [],
        "echo_delay_ms": 0,
        "profiles_dir": None,
        "openai_api_key": None,
        "workspace": "test-workspace",
        "sse_heartbeat_s": 15.0,
        "drain_grace_s": 0.0,
        "data_dir": None,  # ephemeral unless a test asks for a data directory
    }
    values.update(overrides)
    return Settings(**values)


def fleet_settings_for(namespace: str, redis_url: str, **overrides: Any) -> Settings:
    """`settings_for` a gateway with the fleet runtime `fleet` on `redis_url`, with the fast
    heartbeats, leases and sweeps the fleet tests wait on."""
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "fleets": ["fleet"],
        "runtime_id": "fleet",
        "heartbeat_ms": 100,
        "lease_ttl_ms": 1000,
        "sweep_interval_ms": 200,
    }
    return settings_for(namespace, **(values | overrides))
