"""A private, throwaway redis-server per scenario: no persistence, loopback only."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.procs import ManagedProcess, free_port, wait_until

READY_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class PrivateRedis:
    port: int
    proc: ManagedProcess

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=False)

    def used_memory(self) -> int:
        with self.client() as conn:
            return int(conn.info("memory")["used_memory"])

    def flush(self) -> None:
        with self.client() as conn:
            conn.flushall()
            conn.config_resetstat()


def _pings(port: int) -> bool:
    try:
        with redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5) as conn:
            return bool(conn.ping())
    except redis.RedisError:
        return False


@contextmanager
def private_redis(log_dir: Path, name: str = "redis") -> Iterator[PrivateRedis]:
    """Start `redis-server` on a free port (no RDB, no AOF, its own working dir), wait for
    PING, yield it, and stop it however the block ends."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not on PATH")
    workdir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    port = free_port()
    argv = [
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(workdir),
        "--maxclients", "10000",
        "--loglevel", "warning",
    ]  # fmt: skip
    proc = ManagedProcess(name, argv, log_dir)
    try:
        wait_until(lambda: _pings(port), READY_TIMEOUT_S, "redis-server did not answer PING", proc)
        yield PrivateRedis(port=port, proc=proc)
    finally:
        proc.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def redis_version() -> str:
    """`redis-server --version` of the binary the scenarios start."""
    try:
        out = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    for token in out.split():
        if token.startswith("v="):
            return token[2:]
    return out.strip() or "unknown"
