"""A private Redis Cluster per scenario, for the `--cluster` variants: the test suite's launcher
(`tests.redis_cluster.RedisCluster`, one place for how a cluster is made), here with no AOF,
loopback only, its nodes' logs under the scenario's log folder."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.redis_cluster import RedisCluster

PRIMARIES = 3


@contextmanager
def private_cluster(log_dir: Path, primaries: int = PRIMARIES) -> Iterator[RedisCluster]:
    """Start `primaries` cluster-enabled redis-servers, join them, wait for `cluster_state:ok`,
    yield the cluster, and kill its nodes however the block ends."""
    if shutil.which("redis-cli") is None or shutil.which("redis-server") is None:
        raise RuntimeError("redis-server and redis-cli must be on PATH for --cluster")
    workdir = log_dir / "cluster"
    shutil.rmtree(workdir, ignore_errors=True)  # a node that knows an old cluster cannot join
    cluster = RedisCluster(workdir, primaries=primaries, persistent=False)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def flush_cluster(cluster: RedisCluster) -> None:
    """Empty every primary between rounds, as `PrivateRedis.flush` does for one server."""
    for server in cluster.servers:
        with redis.Redis(host="127.0.0.1", port=server.port) as conn:
            if conn.info("replication")["role"] == "master":
                conn.flushall()
                conn.config_resetstat()


def cluster_shape(cluster: RedisCluster) -> str:
    """What the report says of the cluster: primaries and replicas."""
    return f"{cluster.primaries} primaries, {cluster.replicas} replicas each, no AOF"


__all__ = ["RedisCluster", "cluster_shape", "flush_cluster", "private_cluster"]
