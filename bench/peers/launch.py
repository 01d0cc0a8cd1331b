"""Start peer processes for a scenario and stop them when it leaves the block."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench.procs import ManagedProcess, free_port, http_ok, python_module, wait_until
from bench.redis_server import PrivateRedis

READY_TIMEOUT_S = 20.0
ARQ_HEALTH_KEY = "arq:queue:health-check"  # written by an arq worker on its first poll


@contextmanager
def peer_app(module: str, redis: PrivateRedis, log_dir: Path) -> Iterator[int]:
    """`python -m bench.peers.<module>` under uvicorn; yields its port once /readyz answers."""
    port = free_port()
    argv = python_module(f"bench.peers.{module}", "--port", str(port), "--redis-url", redis.url)
    with ManagedProcess(f"{module}-{port}", argv, log_dir) as proc:
        wait_until(
            http_ok(f"http://127.0.0.1:{port}/readyz"),
            READY_TIMEOUT_S,
            f"{module} did not become ready",
            proc,
        )
        yield port


@contextmanager
def static_http(log_dir: Path) -> Iterator[int]:
    """The canned-answer server wrk's own ceiling is measured against."""
    port = free_port()
    argv = python_module("bench.peers.static_http", "--port", str(port))
    with ManagedProcess("static_http", argv, log_dir) as proc:
        wait_until(
            http_ok(f"http://127.0.0.1:{port}/"), READY_TIMEOUT_S, "static_http not up", proc
        )
        yield port


@contextmanager
def arq_peer(
    redis: PrivateRedis, log_dir: Path, poll_delay_s: float, workers: int = 2
) -> Iterator[int]:
    """The HTTP + arq path: the FastAPI app plus `workers` arq worker processes (as many as
    Yoi gets runtime processes); yields the app's port."""
    with ExitStack() as stack:
        for index in range(workers):
            argv = python_module(
                "bench.peers.arq_worker", "--redis-url", redis.url,
                "--poll-delay-s", str(poll_delay_s),
            )  # fmt: skip
            name = f"arq_worker-{poll_delay_s:g}-{index + 1}"
            stack.enter_context(ManagedProcess(name, argv, log_dir))
        port = stack.enter_context(peer_app("arq_app", redis, log_dir))
        with redis.client() as conn:
            wait_until(
                lambda: bool(conn.exists(ARQ_HEALTH_KEY)), READY_TIMEOUT_S, "arq worker not up"
            )
        yield port
