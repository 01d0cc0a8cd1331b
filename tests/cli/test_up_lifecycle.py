"""`yoi up` as a supervisor: a signal to it alone, a supervisor killed outright, and the token
it generates when the gateway listens beyond loopback (children that die: test_up_supervise)."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest

from tests.cli.support import ProcId, alive, assert_all_gone, clean_env, yoi_up
from tests.helpers import free_port

pytestmark = pytest.mark.slow


def cmdline(proc_id: ProcId) -> list[str]:
    return Path(f"/proc/{proc_id[0]}/cmdline").read_text().split("\0")


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_yoi_up_alone_stops_everything(
    redis_url: str, namespace: str, stop_signal: signal.Signals
) -> None:
    """`kill -TERM` / `kill -INT` reach yoi up only: it stops its children itself. Also: the
    configured Redis, and the token generated for a gateway listening beyond loopback."""
    env = clean_env(REDIS_URL=redis_url, YOI_NAMESPACE=namespace)
    port = free_port()
    with yoi_up(
        "--host", "0.0.0.0", "--port", str(port), "--processes", "1", env=env, expected_processes=1
    ) as stack:
        assert stack.redis_port is None
        assert stack.out.seen[0].startswith("Data: ")  # YOI_DATA_DIR= empty: ephemeral
        assert stack.out.seen[1].startswith("Redis: ") and stack.out.seen[1].endswith(
            "(configured)"
        )
        assert stack.gateway == f"http://127.0.0.1:{port}"
        token = stack.out.wait_for(r"^API token: (\S+)").group(1)
        assert len(token) >= 24

        assert stack.yoi("runtimes").returncode == 6  # beyond loopback: the token is required
        listing = stack.yoi("runtimes", "--token", token)
        assert listing.returncode == 0, listing.stderr
        assert "fleet" in listing.stdout
        for child in stack.tree:  # children get the token from the environment, never argv
            assert not any(token in arg for arg in cmdline(child))

        assert stack.stop(stop_signal) == 0
    assert stack.err.wait_for("yoi.up: stopped")


def test_a_killed_supervisor_takes_its_children_along(namespace: str) -> None:
    env = clean_env(YOI_NAMESPACE=namespace)
    with yoi_up(
        "--port", str(free_port()), "--processes", "1", env=env, expected_processes=1
    ) as stack:
        redis_server = next(c for c in stack.tree if "redis-server" in cmdline(c)[0])
        workdir = Path(f"/proc/{redis_server[0]}/cwd").resolve()
        try:
            stack.proc.kill()  # no chance to clean up: the kernel's parent-death signal acts
            stack.proc.wait(timeout=30)
            assert_all_gone(stack.tree)
            assert not alive(redis_server)
        finally:
            # A SIGKILLed yoi up cannot delete its ephemeral data dir (the redis dir's parent).
            if workdir.parent.name.startswith("yoi-up-"):
                shutil.rmtree(workdir.parent, ignore_errors=True)
