"""A real `yoi gateway` process on a free loopback port, for the browser tests and screenshot."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.helpers import free_port, wait_until_sync

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0

# Variables that would point the gateway at something other than its own embedded runtime.
_SCRUBBED = ("YOI_API_TOKEN", "YOI_REDIS_URL", "REDIS_URL", "YOI_FLEETS", "YOI_PROVIDER")


def gateway_command(port: int) -> list[str]:
    """`yoi gateway` from the interpreter's own environment (the console script of the package)."""
    yoi = Path(sys.executable).with_name("yoi")
    return [str(yoi), "gateway", "--host", "127.0.0.1", "--port", str(port)]


@dataclass
class Gateway:
    url: str
    token: str | None
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers(), timeout=10.0)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


def _ready(gateway: Gateway) -> bool:
    if gateway.process.poll() is not None:
        raise AssertionError(
            f"the gateway exited with {gateway.process.returncode} before it was ready:\n"
            f"{gateway.log_tail()}"
        )
    try:
        return httpx.get(f"{gateway.url}/readyz", timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def running_gateway(
    workdir: Path,
    *,
    token: str | None = None,
    echo_delay_ms: int = 40,
    env: dict[str, str] | None = None,
    port: int | None = None,
    extra_args: list[str] | None = None,
) -> Iterator[Gateway]:
    """Starts the gateway (on `port`, else a free one), waits for `/readyz`, and stops it
    (terminate, then kill) on exit."""
    port = port or free_port()
    environ = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    environ["YOI_ECHO_DELAY_MS"] = str(echo_delay_ms)
    environ.update(env or {})
    if token is not None:
        environ["YOI_API_TOKEN"] = token
    log_path = workdir / f"gateway-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*gateway_command(port), *(extra_args or [])],
            env=environ,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    gateway = Gateway(f"http://127.0.0.1:{port}", token, log_path, process)
    try:
        wait_until_sync(lambda: _ready(gateway), timeout_s=READY_TIMEOUT_S, what="gateway /readyz")
        yield gateway
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)
