"""Where a run happened: numbers only mean something next to the machine that produced them."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.redis_server import redis_version

REPO_ROOT = Path(__file__).resolve().parent.parent


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=5, check=False, cwd=REPO_ROOT
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() or done.stderr.strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_mb() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def _git_rev() -> str:
    rev = _run(["git", "rev-parse", "--short", "HEAD"])
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"])
    return f"{rev}{'+dirty' if dirty else ''}" if rev else "unknown"


def environment(quick: bool, argv: list[str]) -> dict[str, Any]:
    wrk = _run(["wrk", "--version"]).split(" Copyright")[0] if shutil.which("wrk") else "missing"
    return {
        "command": "python -m bench " + " ".join(argv),
        "quick": quick,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "mem_total_mb": _mem_total_mb(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "redis": redis_version(),
        "wrk": wrk,
        "git_rev": _git_rev(),
    }
