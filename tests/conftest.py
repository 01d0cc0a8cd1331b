"""Shared fixtures: a real Redis (the machine's, or a private one started here), a real Redis
Cluster started here, and namespaces.

Tests never flush the shared Redis: each one works in a namespace of its own, so suites can share
a server; a test that must flush asks for `private_redis_url`, a server the suite started.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port
from tests.redis_cluster import RedisCluster
from tests.redis_server import answers, private_redis

# Never write into the real home: every gateway this suite starts, in process or as a child
# process (which inherits this), keeps its embedded Workers in memory unless a test sets
# YOI_DATA_DIR to a directory of its own; a child started without YOI_* variables falls back
# to a per-user data directory under this suite's own XDG_DATA_HOME, not the real one.
os.environ["YOI_DATA_DIR"] = ""
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="yoi-tests-xdg-")
atexit.register(shutil.rmtree, os.environ["XDG_DATA_HOME"], True)


# A test that uses one of these fixtures needs a real redis-server (the shared one or its own).
REAL_REDIS_FIXTURES = frozenset({"redis_url", "private_redis_url"})


FIRST = "tests/packaging/test_lowest_versions.py"
"""The longest file (a venv at the lowest versions, then the unit tests in it): started first, so
the other test process runs the rest beside it instead of it running alone at the end."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`-m "not redis"` leaves out every test whose fixtures reach a real Redis, marked or not."""
    for item in items:
        if REAL_REDIS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.redis)
    items.sort(key=lambda item: not item.nodeid.startswith(FIRST))  # stable: the rest keep order


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """`YOI_TEST_REDIS_URL`, else 127.0.0.1:6379 when it answers, else a private redis-server.

    Tests on this Redis never flush it: it may be shared with other suites and people.
    """
    url = os.environ.get("YOI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    if answers(url):
        yield url
        return
    with private_redis() as private:
        yield private


@pytest.fixture(scope="session")
def private_redis_url() -> Iterator[str]:
    """A redis-server this suite started itself: the only kind a test may flush."""
    with private_redis() as url:
        yield url


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A real Redis Cluster of three primaries (no replicas), shared by the session's tests;
    they isolate by namespace as on one server."""
    # Not under pytest's basetemp: concurrent sessions rotate those away while this one runs.
    workdir = Path(tempfile.mkdtemp(prefix="yoi-cluster-"))
    cluster = RedisCluster(workdir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_cluster_url(redis_cluster: RedisCluster) -> str:
    return redis_cluster.url


@pytest.fixture
def redis_cluster_replicas(tmp_path: Path) -> Iterator[RedisCluster]:
    """Three primaries with one replica each, for one test: failover tests kill its nodes."""
    cluster = RedisCluster(tmp_path / "cluster", replicas=1)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def namespace() -> str:
    """A key namespace no other test uses."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def tmp_workdir(tmp_path: Path) -> Path:
    return tmp_path


__all__ = ["free_port", "socket"]
