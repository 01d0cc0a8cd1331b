"""A real Redis Cluster of private servers (`tests.redis_server.RedisServer`), and a TCP proxy
the test controls (forward, or blackhole without refusing).

Never the shared server: whatever a test restarts, kills or partitions is its own. The
benchmarks start their cluster with this launcher too (bench/redis_cluster.py), without AOF.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from shared.keys import SLOTS
from tests.helpers import wait_until_sync
from tests.redis_server import RedisServer


def free_cluster_port() -> int:
    """A port whose cluster bus port (+10000) is free too, both below 65536 (ephemeral ports
    are mostly too high for that)."""
    for _ in range(200):
        port = random.randint(20_000, 30_000)
        if all(_bindable(p) for p in (port, port + 10_000)):
            return port
    raise AssertionError("no free port pair for a cluster node")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def cluster_info(url: str) -> dict[str, str]:
    """CLUSTER INFO of one node; empty when it does not answer."""
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1)
    try:
        info: dict[str, Any] = client.cluster("INFO")  # type: ignore[assignment]
    except (redis.ConnectionError, redis.TimeoutError):
        return {}
    finally:
        client.close()
    return {str(key): str(value) for key, value in info.items()}


@dataclass
class RedisCluster:
    """`primaries * (1 + replicas)` cluster-enabled servers joined by `redis-cli --cluster
    create`; `url` names one primary, as a user's `redis://` URL would. `persistent`: each
    node keeps an AOF (a killed node restarts with its data). `full_coverage` False: the
    nodes keep serving their slots while another primary is down
    (`cluster-require-full-coverage no`), as a cluster without replicas may be run."""

    workdir: Path
    primaries: int = 3
    replicas: int = 0
    persistent: bool = True
    full_coverage: bool = True
    servers: list[RedisServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.servers[0].url

    def start(self) -> None:
        for index in range(self.primaries * (1 + self.replicas)):
            args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            args += ["--cluster-node-timeout", "2000"]
            args += ["--appendonly", "yes" if self.persistent else "no"]
            args += ["--cluster-require-full-coverage", "yes" if self.full_coverage else "no"]
            server = RedisServer(self.workdir / f"node{index}", args, free_cluster_port())
            self.servers.append(server)
            server.start()
        cli = shutil.which("redis-cli")
        assert cli, "redis-cli must be on PATH to create a cluster"
        create = [cli, "--cluster", "create", *(s.address for s in self.servers)]
        create += ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
        if len(self.servers) == 1:  # `--cluster create` wants 3 primaries: one takes every slot
            port = str(self.servers[0].port)
            create = [cli, "-p", port, "cluster", "addslotsrange", "0", str(SLOTS - 1)]
        try:
            subprocess.run(create, check=True, capture_output=True, timeout=60)
            self.wait_ok()
            if self.replicas:
                self.wait_replicas()
        except BaseException:
            self.stop()
            raise

    def wait_ok(self, timeout_s: float = 30.0) -> None:
        """Until every live node says `cluster_state:ok` and knows every node."""
        expected = str(len(self.servers))

        def healthy() -> bool:
            live = [s for s in self.servers if s.proc is not None and s.proc.poll() is None]
            infos = [cluster_info(s.url) for s in live]
            return all(
                i.get("cluster_state") == "ok" and i.get("cluster_known_nodes") == expected
                for i in infos
            )

        wait_until_sync(healthy, timeout_s=timeout_s, what="cluster_state:ok on every node")

    def wait_replicas(self, timeout_s: float = 30.0) -> None:
        """Until every node sees every replica as one, and each replica is in sync: a replica
        can be promoted only then."""
        expected = self.primaries * self.replicas

        def synced() -> bool:
            for server in self.servers:
                client = redis.Redis.from_url(server.url, socket_timeout=1, decode_responses=True)
                try:
                    nodes: dict[str, Any] = client.cluster("NODES")  # type: ignore[assignment]
                    role: dict[str, Any] = client.info("replication")  # type: ignore[assignment]
                finally:
                    client.close()
                replicas = [n for n in nodes.values() if "slave" in n["flags"]]
                if len(replicas) != expected:
                    return False
                if role["role"] == "slave" and role.get("master_link_status") != "up":
                    return False
            return True

        wait_until_sync(synced, timeout_s=timeout_s, what="every replica attached and in sync")

    def nodes(self, via: RedisServer | None = None) -> dict[str, dict[str, str]]:
        """CLUSTER NODES as one live node sees it: address → node id, flags, master id."""
        server = via or next(s for s in self.servers if s.proc and s.proc.poll() is None)
        client = redis.Redis.from_url(server.url, socket_timeout=1, decode_responses=True)
        try:
            raw: dict[str, Any] = client.cluster("NODES")  # type: ignore[assignment]
        finally:
            client.close()
        return {
            address: {key: str(node[key]) for key in ("node_id", "flags", "master_id")}
            for address, node in raw.items()
        }

    def replica_of(self, primary: RedisServer) -> RedisServer:
        nodes = self.nodes()
        primary_id = nodes[primary.address]["node_id"]
        address = next(a for a, n in nodes.items() if n["master_id"] == primary_id)
        return next(s for s in self.servers if s.address == address)

    def wait_promoted(self, replica: RedisServer, timeout_s: float = 30.0) -> None:
        """Until `replica` is a primary, as every live node sees it, and the cluster is ok."""

        def promoted() -> bool:
            live = [s for s in self.servers if s.proc is not None and s.proc.poll() is None]
            return all("master" in self.nodes(s)[replica.address]["flags"] for s in live)

        wait_until_sync(promoted, timeout_s=timeout_s, what=f"{replica.address} promoted")
        self.wait_ok(timeout_s)

    def stop(self) -> None:
        for server in self.servers:
            server.kill()


class TcpProxy:
    """A loopback TCP proxy to `upstream_port`, run on a thread of its own so sync and async
    tests alike can steer it. `blackhole()` stops moving bytes both ways without refusing or
    closing anything (a dropped network, a stopped server); `forward()` lets them flow again,
    as a healed partition does."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._gate = asyncio.Event()
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> TcpProxy:
        self._thread.start()
        assert self._ready.wait(10), "the TCP proxy did not start"
        return self

    def forward(self) -> None:
        self._loop.call_soon_threadsafe(self._gate.set)

    def blackhole(self) -> None:
        self._loop.call_soon_threadsafe(self._gate.clear)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._listen())
        self._ready.set()
        self._loop.run_forever()

    async def _listen(self) -> None:
        self._gate.set()
        self._server = await asyncio.start_server(self._accepted, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except (OSError, asyncio.CancelledError):  # no upstream, or the proxy stopping
            writer.close()
            self._conns.discard(task)
            return
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for w in (writer, up_writer):
                w.close()
            self._conns.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await self._gate.wait()
            data = await reader.read(65536)
            if not data:
                writer.close()
                return
            await self._gate.wait()  # bytes read just before a blackhole wait for the heal
            writer.write(data)
            await writer.drain()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)
