"""Logs of real `yoi gateway`, `yoi runtime` and `yoi up` processes at DEBUG: one JSON object per
line with `YOI_LOG_FORMAT=json`, and never a planted secret (a Redis password, a token in the
provider URL's path, the provider key, the API token, a query string sent to the gateway)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.cli.support import (
    Lines,
    clean_env,
    finish,
    provider_in_a_thread,
    redis_with_user,
    start,
    wait_ready,
    yoi,
    yoi_up,
)
from tests.fake_openai_server import FakeOpenAIServer
from tests.helpers import free_port

pytestmark = pytest.mark.slow

PASSWORD = "s3cr3tPLANTED"
PATH_TOKEN = "tok123PLANTED"
KEY = "sk-PLANTED-key"
API_TOKEN = "api-PLANTED-token"
QUERY_TOKEN = "ticketPLANTED"
PLANTED = (PASSWORD, PATH_TOKEN, KEY, API_TOKEN, QUERY_TOKEN)


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    with redis_with_user("user", PASSWORD) as port:
        yield port


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeOpenAIServer]:
    with provider_in_a_thread() as server:
        yield server


def planted_env(redis_port: int, provider: FakeOpenAIServer) -> dict[str, str]:
    return clean_env(
        YOI_REDIS_URL=f"redis://user:{PASSWORD}@127.0.0.1:{redis_port}/0",
        YOI_OPENAI_BASE_URL=f"http://127.0.0.1:{provider.port}/{PATH_TOKEN}/v1",
        YOI_PROVIDER="openai",
        YOI_OPENAI_API_KEY=KEY,
        YOI_OPENAI_MODEL="fake-model",
        YOI_API_TOKEN=API_TOKEN,
        YOI_NAMESPACE="t" + uuid.uuid4().hex[:12],
        YOI_LOG_LEVEL="DEBUG",
        YOI_LOG_FORMAT="json",
    )


def json_lines(lines: list[str]) -> list[dict[str, Any]]:
    """Every line is one JSON object with the documented fields (fails on any other line)."""
    entries = [json.loads(line) for line in lines]
    for entry in entries:
        assert {"ts", "level", "logger", "message"} <= entry.keys(), entry
    return entries


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for planted in PLANTED:
            assert planted not in text, (planted, text)


def test_gateway_and_runtime_log_json_lines_without_secrets(
    redis_port: int, provider: FakeOpenAIServer
) -> None:
    env = planted_env(redis_port, provider)
    port = free_port()
    gateway = start("gateway", "--port", str(port), "--fleet", "fleet", env=env)
    runtime = start("runtime", "--runtime-id", "fleet", env=env)
    logs = {"gateway": Lines(gateway.stderr), "runtime": Lines(runtime.stderr)}
    url = f"http://127.0.0.1:{port}"
    client_env = {**env, "YOI_GATEWAY": url}
    try:
        wait_ready(url)
        companion = yoi("send", "companion@backend-internal", "hello", env=client_env)
        assert companion.returncode == 0, companion.stderr
        assert companion.stdout == "Hello, world!\n"
        assert yoi("create", "fleet", "bob", env=client_env).returncode == 0
        fleet = yoi("send", "bob@fleet", "hi", env=client_env)
        assert (fleet.returncode, fleet.stdout) == (0, "Hello, world!\n"), fleet.stderr
        headers = {"Authorization": f"Bearer {API_TOKEN}"}
        listed = httpx.get(f"{url}/api/runtimes?ticket={QUERY_TOKEN}", headers=headers)
        assert listed.status_code == 200
        assert_no_secret(companion.stdout + companion.stderr, fleet.stdout + fleet.stderr)
    finally:
        codes = finish(gateway), finish(runtime)
    assert codes == (0, 0)
    entries = {name: json_lines(lines.rest()) for name, lines in logs.items()}
    everything = [entry for found in entries.values() for entry in found]
    assert_no_secret(*(json.dumps(entry) for entry in everything))
    assert any(entry["level"] == "DEBUG" for entry in everything)
    # The lines the filter had to clean were there: httpx logs each provider request's URL.
    provider_calls = [e["message"] for e in everything if e["logger"].startswith("httpx")]
    assert any(f"POST http://127.0.0.1:{provider.port}/…" in line for line in provider_calls)
    assert "yoi.member" in {e["logger"] for e in entries["runtime"]}
    # uvicorn's own loggers went through the one setup; the access log has no query string.
    assert any(e["logger"].startswith("uvicorn") for e in entries["gateway"])
    access = [e["message"] for e in entries["gateway"] if e["logger"] == "yoi.gateway.access"]
    assert any(line.startswith("GET /api/runtimes 200") for line in access), access
    assert not any("?" in line for line in access)


def test_yoi_up_logs_json_lines_without_secrets(
    redis_port: int, provider: FakeOpenAIServer
) -> None:
    env = planted_env(redis_port, provider)
    with yoi_up("--port", str(free_port()), "--processes", "1", env=env, expected_processes=1) as s:
        sent = s.yoi("send", "--token", API_TOKEN, "companion@backend-internal", "hello")
        assert (sent.returncode, sent.stdout) == (0, "Hello, world!\n"), sent.stderr
        code = s.stop(2)  # SIGINT
    assert code == 0
    assert s.out.seen[0].startswith("Data: ")  # for the operator, on stdout (not in the log)
    assert s.out.seen[1] == f"Redis: 127.0.0.1:{redis_port}/0 (configured)"
    stderr = s.err.rest()
    entries = json_lines(stderr)  # the supervisor's lines and its children's alike
    assert {"yoi.up", "yoi.member", "uvicorn.error"} <= {e["logger"] for e in entries}
    assert_no_secret(*s.out.seen, *stderr)
