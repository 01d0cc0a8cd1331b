"""A real gateway (a `yoi gateway` process) serving the embedded runtime and a fleet runtime
hosted by `yoi runtime` processes, on the test Redis in a namespace of its own."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.cli.support import Lines, clean_env, finish, start, wait_ready
from tests.helpers import free_port

TOKEN = "sdk-test-token"


@dataclass
class Gateway:
    url: str
    port: int
    env: dict[str, str]
    members: list[subprocess.Popen[str]] = field(default_factory=list)

    def add_member(self) -> subprocess.Popen[str]:
        member = start("runtime", "--runtime-id", "fleet", env=self.env)
        self.members.append(member)
        return member


def _gateway(redis_url: str, namespace: str, **extra: str) -> Iterator[Gateway]:
    port = free_port()
    env = clean_env(
        YOI_REDIS_URL=redis_url,
        YOI_NAMESPACE=namespace,
        YOI_API_TOKEN=TOKEN,
        YOI_LEASE_TTL_MS="1000",
        YOI_HEARTBEAT_MS="200",
        **extra,
    )
    process = start("gateway", "--port", str(port), "--fleet", "fleet", env=env)
    logs = Lines(process.stderr)
    gateway = Gateway(f"http://127.0.0.1:{port}", port, env)
    try:
        gateway.add_member()
        wait_ready(gateway.url)
        yield gateway
    finally:
        for member in gateway.members:
            finish(member)
        assert finish(process) == 0, logs.rest()


def _namespace() -> str:
    import uuid

    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def gateway(redis_url: str) -> Iterator[Gateway]:
    """Quick answers (echo with 20 ms between words) and a short event window (`cursor_expired`);
    one for the whole package (each test makes Workers of its own)."""
    yield from _gateway(redis_url, _namespace(), YOI_ECHO_DELAY_MS="20", YOI_EVENTS_MAXLEN="40")


@pytest.fixture(scope="module")
def slow_gateway(redis_url: str) -> Iterator[Gateway]:
    """Answers slow enough (100 ms between words) to cut something mid-answer."""
    yield from _gateway(redis_url, _namespace(), YOI_ECHO_DELAY_MS="100")


@pytest.fixture
def killable_gateway(redis_url: str, namespace: str) -> Iterator[Gateway]:
    """A slow gateway of one test's own: the test kills its runtime process."""
    yield from _gateway(redis_url, namespace, YOI_ECHO_DELAY_MS="100")
