"""kill -9 of a process mid-answer: the reopened store is consistent and the host's recovery
ends the interrupted run exactly once, as the profile's `on_host_lost` says."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from runtime_worker.runtime import Runtime
from shared.events import Event, RunFinished, RunStarted
from shared.models import RunResult, WorkerState
from shared.settings import Settings
from tests.durable.support import profiles
from tests.helpers import wait_until

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[2]


def _killed_mid_answer(path: Path, profile: str) -> tuple[str, str]:
    """Run the child until its answer streams, SIGKILL it; its worker and input ids."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.durable.child", str(path), profile],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert child.stdout is not None
        worker_id = child.stdout.readline().split()[1]
        input_id = child.stdout.readline().split()[1]
        assert child.stdout.readline().strip() == "streaming"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return worker_id, input_id


async def _recovered(path: Path, worker_id: str, input_id: str) -> tuple[list[Event], Runtime]:
    runtime = Runtime.embedded(
        Settings(echo_delay_ms=0, data_dir=None), path=path, profiles=profiles()
    )
    await runtime.start()
    seen: list[Event] = []

    async def finished() -> bool:
        seen[:] = (await runtime.events(worker_id, limit=1000)).events
        return any(isinstance(e, RunFinished) and e.input_id == input_id for e in seen)

    await wait_until(finished, timeout_s=20, what="the interrupted run to end")
    return seen, runtime


async def test_interrupted_run_is_run_again_as_attempt_2(tmp_path: Path) -> None:
    path = tmp_path / "yoi.sqlite3"
    worker_id, input_id = _killed_mid_answer(path, "retrying")
    events, runtime = await _recovered(path, worker_id, input_id)
    try:
        attempts = [e.attempt for e in events if isinstance(e, RunStarted)]
        assert attempts == [1, 2]
        finals = [e for e in events if isinstance(e, RunFinished)]
        assert [(e.input_id, e.result) for e in finals] == [(input_id, RunResult.FINISHED)]
        detail = await runtime.get_worker(worker_id)
        assert detail.state is WorkerState.IDLE
        assert detail.usage.runs == 1
        roles = [e.role.value for e in (await runtime.transcript(worker_id)).entries]
        assert roles == ["user", "assistant"]  # one user entry: the attempt did not repeat it
    finally:
        await runtime.aclose()
    # Reopened once more, nothing runs again.
    events_after, again = await _recovered(path, worker_id, input_id)
    try:
        assert Counter(type(e).__name__ for e in events_after)["RunFinished"] == 1
    finally:
        await again.aclose()


async def test_interrupted_run_fails_with_host_lost_when_the_profile_says_so(
    tmp_path: Path,
) -> None:
    path = tmp_path / "yoi.sqlite3"
    worker_id, input_id = _killed_mid_answer(path, "fragile")
    events, runtime = await _recovered(path, worker_id, input_id)
    try:
        (final,) = [e for e in events if isinstance(e, RunFinished)]
        assert (final.result, final.reason) == (RunResult.FAILED, "host_lost")
        errors = [e for e in events if e.type == "error"]
        assert [(e.code, e.retryable) for e in errors] == [("host_lost", True)]
        assert (await runtime.get_worker(worker_id)).state is WorkerState.IDLE
    finally:
        await runtime.aclose()
