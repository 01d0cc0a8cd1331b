"""The server processes' `aio.run`: the cycle collector is tuned before the loop starts."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import asyncio, gc
from shared import aio

async def main():
    return gc.get_threshold()[0], gc.get_freeze_count(), type(asyncio.get_running_loop()).__module__

print(*aio.run(main()))
"""


def test_run_freezes_startup_objects_and_raises_the_youngest_threshold() -> None:
    # its own interpreter: freezing the test process's heap would change every later test
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    threshold, frozen, loop_module = int(out[0]), int(out[1]), out[2]
    assert threshold == 10_000
    assert frozen > 1_000  # the imports' objects left every collection's walk
    assert loop_module.startswith("uvloop")
