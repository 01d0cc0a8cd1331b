"""`.ci/run`: starts a Redis where none answers, runs `./run tests`, exits with its exit code."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.helpers import free_port
from tests.packaging.support import ROOT

pytestmark = pytest.mark.slow  # .ci/run starts a redis-server

# Stands in for ./run: reports what it was handed, exits with a code .ci/run must pass on.
STUB = """#!/usr/bin/env bash
exec 3<>"/dev/tcp/127.0.0.1/${CI_REDIS_PORT}"
printf 'PING\\r\\n' >&3
read -r -t 2 reply <&3
echo "args=$* reply=${reply%$'\\r'} url=${YOI_TEST_REDIS_URL}"
exit 7
"""


def refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_ci_starts_redis_runs_the_readme_command_and_passes_its_exit_code_on(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    shutil.copytree(ROOT / ".ci", project / ".ci")
    (project / "run").write_text(STUB)
    (project / "run").chmod(0o755)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOI_")}
    env["CI_REDIS_PORT"] = str(port)
    done = subprocess.run(
        ["bash", ".ci/run"], cwd=project, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 7, done.stderr
    assert f"no Redis at 127.0.0.1:{port}, starting one" in done.stdout
    assert f"args=tests reply=+PONG url=redis://127.0.0.1:{port}/0" in done.stdout
    assert refused(port)  # the Redis it started is gone with it
