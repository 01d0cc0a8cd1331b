"""No credential, file path or store URL in any response, event or log line.

A provider key, a profiles folder path and a Redis password are planted in the settings; every
route is walked through its successes and its errors (a provider answering with the key in its
error, a fleet on a Redis that refuses, an exception whose message holds all of them), and the
bodies, the streamed events and the captured logs (DEBUG) are searched for the planted strings.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from shared.settings import Settings
from tests.fake_openai_server import Behaviour, FakeOpenAIServer
from tests.gateway.support import BI, events_until, finished, open_stream, running_app, state
from tests.helpers import free_port

KEY = "sk-test-PLANTED-SECRET"
PASSWORD = "pw-PLANTED"


class Collected:
    def __init__(self) -> None:
        self.texts: list[str] = []

    def add(self, response: httpx.Response) -> httpx.Response:
        self.texts.append(f"{response.status_code} {dict(response.headers)} {response.text}")
        return response


@pytest.fixture
async def provider() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer() as server:
        yield server


def planted_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, namespace: str, base_url: str, redis_url: str
) -> tuple[Settings, Path]:
    profiles = tmp_path / "planted-profiles-folder"
    profiles.mkdir()
    (profiles / "remote.toml").write_text(
        'name = "remote"\nprovider = "openai"\nmodel = "fake-model"\n', encoding="utf-8"
    )
    monkeypatch.setenv("YOI_OPENAI_API_KEY", KEY)
    monkeypatch.setenv("YOI_PROFILES_DIR", str(profiles))
    monkeypatch.setenv("YOI_OPENAI_BASE_URL", base_url)
    settings = Settings(
        namespace=namespace,
        host="127.0.0.1",
        api_token=None,
        cors_origins=[],
        redis_url=redis_url,
        fleets=["fleet"],
        echo_delay_ms=0,
        drain_grace_s=0,
        events_maxlen=10,
    )
    assert settings.openai_key() == KEY and settings.profiles_dir == profiles
    return settings, profiles


async def walk(app: FastAPI, client: httpx.AsyncClient, seen: Collected) -> None:
    get, post = client.get, client.post
    for path in ("/", "/healthz", "/readyz", "/openapi.json", "/docs", "/api/runtimes"):
        seen.add(await get(path))
    for path in (BI, "/api/runtimes/fleet", "/api/runtimes/nope", "/api/workers"):
        seen.add(await get(path))
    for path in ("/api/runtimes/fleet/workers", "/api/runtimes/fleet/workers/x/events"):
        seen.add(await get(path))
    seen.add(await post("/api/runtimes/fleet/workers", json={"display_name": "f"}))
    seen.add(await post(f"{BI}/workers", json={"display_name": "bad!"}))
    seen.add(await post(f"{BI}/workers", json={"display_name": "p", "profile": "nope"}))
    remote = seen.add(await post(f"{BI}/workers", json={"display_name": "r", "profile": "remote"}))
    worker = f"{BI}/workers/{remote.json()['worker_id']}"
    for path in ("", "/transcript", "/events", "/events?after=bad", "/events?limit=0"):
        seen.add(await get(worker + path))
    seen.add(await post(f"{worker}/stream-ticket"))
    stream = await open_stream(app, f"{worker}/events/stream").open()
    sent = seen.add(await post(f"{worker}/inputs", json={"text": "leak me"}))
    seen.add(await post(f"{worker}/inputs", json={"text": "busy", "strategy": "reject"}))
    seen.add(await post(f"{worker}/inputs", json={"text": "x" * 40_000}))
    seen.add(await post(f"{worker}/inputs", content=b"x" * 300_000))
    events = await events_until(client, f"{worker}/events", None, finished(sent.json()["input_id"]))
    assert any(e["type"] == "error" for e in events), "the provider failure never showed"
    await stream.read_until(lambda ms: any(m.event == "run_finished" for m in ms))
    await stream.close()
    seen.texts.append(stream.body.decode())
    again = seen.add(await post(f"{worker}/inputs", json={"text": "fill the window"}))
    await events_until(client, f"{worker}/events", None, finished(again.json()["input_id"]))
    seen.add(await get(f"{worker}/events?after=0-1"))  # trimmed by now: cursor_expired
    seen.add(await post(f"{worker}/cancel"))
    seen.add(await post(f"{worker}/stop"))
    seen.add(await post(f"{worker}/inputs", json={"text": "stopped"}))
    for path in ("/api/companion", "/api/companion/transcript", "/api/companion/events"):
        seen.add(await get(path))
    seen.add(await post("/api/companion/messages", json={"text": "hello"}))
    seen.add(await post("/api/companion/cancel"))
    seen.add(await post("/api/companion/stream-ticket"))
    seen.add(await get("/no/such/route"))
    seen.add(await client.delete("/api/runtimes"))
    seen.add(await get("/metrics"))


@pytest.mark.parametrize("fleet", ["dead-redis", "refusing-redis"])
async def test_no_planted_secret_anywhere(
    fleet: str,
    provider: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port() if fleet == "dead-redis" else 6379  # the real one refuses the password
    redis_url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    settings, profiles = planted_settings(
        monkeypatch, tmp_path, namespace, provider.base_url, redis_url
    )
    provider.script(Behaviour.fail(401, f"Incorrect API key provided: {KEY}"))
    caplog.set_level(logging.DEBUG)
    seen = Collected()
    async with running_app(settings) as (app, client):
        await walk(app, client, seen)

        async def boom() -> None:
            raise RuntimeError(f"exploded with {KEY} at {profiles} via {redis_url}")

        monkeypatch.setattr(state(app).runtimes().embedded, "list_workers", boom)
        failed = seen.add(await client.get(f"{BI}/workers"))
        assert failed.status_code == 500
    assert provider.requests, "the planted key never reached the provider"
    everything = "\n".join(seen.texts) + "\n" + caplog.text
    codes = set(re.findall(r'"code":"(\w+)"', everything))
    assert codes >= {
        "invalid_input",
        "runtime_not_found",
        "worker_not_found",
        "worker_busy",
        "worker_stopped",
        "cursor_expired",
        "payload_too_large",
        "runtime_unavailable",
        "provider_error",
        "internal_error",
    }, codes
    assert "fleet" in everything and "runtime_unavailable" in everything
    for planted in (KEY, PASSWORD, str(profiles), "planted-profiles-folder", redis_url):
        assert planted not in everything, f"{planted!r} leaked"
