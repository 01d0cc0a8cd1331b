"""A real gateway process (uvicorn on a loopback port) for the OpenAI facade's tests: on the
embedded runtime, or on a fleet runtime with a real `yoi runtime` process on the real Redis
(the facade's default runtime, `YOI_CHAT_RUNTIME`, set to that fleet)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port, wait_until_sync

TOKEN = "openai-facade-token"
FLEET = "fleet"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
CLI = "import sys; from gateway.cli import main; sys.exit(main())"


@dataclass
class Stack:
    base: str
    runtime_id: str
    logs: list[Path]

    @property
    def v1(self) -> str:
        return f"{self.base}/v1"

    def api(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        return httpx.Client(base_url=self.base, headers=headers, timeout=10.0)

    def output(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in self.logs)


def _env(namespace: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOI_")}
    env.pop("REDIS_URL", None)
    env.update(
        YOI_NAMESPACE=namespace,
        YOI_API_TOKEN=TOKEN,
        YOI_ECHO_DELAY_MS="10",
        YOI_HEARTBEAT_MS="200",
        YOI_LEASE_TTL_MS="2000",
        YOI_SWEEP_INTERVAL_MS="300",
        YOI_DRAIN_GRACE_S="1",
        YOI_DATA_DIR="",  # the embedded Workers in memory: each gateway starts empty
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(STOP_TIMEOUT_S)


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture(params=["embedded", "fleet"])
def stack(
    request: pytest.FixtureRequest, tmp_path: Path, namespace: str, redis_url: str
) -> Iterator[Stack]:
    fleet = request.param == "fleet"
    port = free_port()
    args = [sys.executable, "-m", "gateway", "--host", "127.0.0.1", "--port", str(port)]
    extra: dict[str, str] = {}
    procs: list[subprocess.Popen[bytes]] = []
    logs = [tmp_path / "gateway.log"]
    if fleet:
        args += ["--redis-url", redis_url, "--fleet", FLEET]
        extra["YOI_CHAT_RUNTIME"] = FLEET
        member = [sys.executable, "-c", CLI, "runtime", "--redis-url", redis_url]
        logs.append(tmp_path / "member.log")
        procs.append(_start([*member, "--runtime-id", FLEET], _env(namespace), logs[-1]))
    procs.append(_start(args, _env(namespace, **extra), logs[0]))
    stack = Stack(f"http://127.0.0.1:{port}", FLEET if fleet else "backend-internal", logs)

    def ready() -> bool:
        for proc in procs:
            assert proc.poll() is None, stack.output()
        try:  # ready: Redis reachable and, for the fleet, its member alive
            return httpx.get(f"{stack.base}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until_sync(ready, timeout_s=START_TIMEOUT_S, what="the gateway (and member) ready")
        yield stack
    finally:
        for proc in reversed(procs):
            _stop(proc)
