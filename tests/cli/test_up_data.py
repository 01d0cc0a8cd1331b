"""`yoi up` keeps what it holds in the data directory: its private Redis's append-only file (fleet
Workers, transcripts, accepted inputs) and the gateway's embedded store (the Companion). Both
survive a restart, even one after the gateway was killed mid-answer; one `yoi up` per data
directory; `--ephemeral` keeps nothing."""

from __future__ import annotations

import os
import re
import signal
import uuid
from pathlib import Path

import pytest

from tests.cli.fleet_http import Gateway, children_running
from tests.cli.support import clean_env, yoi, yoi_up
from tests.helpers import free_port

pytestmark = pytest.mark.slow

LONG_TEXT = " ".join(f"piece{i}" for i in range(30))  # 30 pieces at 100 ms: 3 s of answer


def env_for_up() -> dict[str, str]:
    return clean_env(
        YOI_NAMESPACE="t" + uuid.uuid4().hex[:12],
        YOI_ECHO_DELAY_MS="100",
        YOI_DRAIN_GRACE_S="0.2",  # a stopped member hands its answer back at once
    )


def test_fleet_workers_and_transcripts_survive_a_restart(tmp_path: Path) -> None:
    env = env_for_up()
    data = tmp_path / "data"
    args = ("--port", str(free_port()), "--processes", "1", "--data-dir", str(data))
    with yoi_up(*args, env=env, expected_processes=1) as stack:
        assert stack.out.seen[0] == f"Data: {data}"
        gateway = Gateway(stack.gateway)
        try:
            bob = gateway.create("bob")
            companion = gateway.companion()
            gateway.send(bob, "remember this line", "first")
            gateway.send(companion, "remember me too", "c-first")
            for worker_id, input_id in ((bob, "first"), (companion, "c-first")):
                finished = gateway.wait_for(worker_id, input_id, "run_finished")
                assert [e["result"] for e in finished] == ["finished"]
            before = gateway.transcript_texts(bob)
            companion_before = gateway.transcript_texts(companion)
        finally:
            gateway.close()
        assert stack.stop(signal.SIGINT) == 0
    assert (data / "redis").is_dir()

    with yoi_up(*args, env=env, expected_processes=1) as stack:
        gateway = Gateway(stack.gateway)
        try:
            listed = gateway.http.get("/api/runtimes/fleet/workers").json()["workers"]
            assert [w["worker_id"] for w in listed] == [bob]
            assert gateway.transcript_texts(bob) == before
            assert any("remember this line" in text for text in before)
            assert gateway.companion() == companion  # the same Worker, its conversation kept
            assert gateway.transcript_texts(companion) == companion_before
            assert any("remember me too" in text for text in companion_before)
            gateway.send(bob, "and this one", "second")  # the same Worker goes on
            assert [e["result"] for e in gateway.wait_for(bob, "second", "run_finished")] == [
                "finished"
            ]
            assert len(gateway.of_input(bob, "first", "run_finished")) == 1
        finally:
            gateway.close()


def test_gateway_killed_mid_answer_then_restart_answers_it_once(tmp_path: Path) -> None:
    env = env_for_up()
    args = ("--port", str(free_port()), "--processes", "1", "--data-dir", str(tmp_path))
    with yoi_up(*args, env=env, expected_processes=1) as stack:
        gateway = Gateway(stack.gateway)
        try:
            bob = gateway.create("bob")
            companion = gateway.companion()
            gateway.send(bob, LONG_TEXT, "in-flight")
            gateway.send(bob, "queued behind it", "queued")  # accepted, not started
            gateway.send(companion, LONG_TEXT, "c-in-flight")  # runs inside the gateway
            gateway.wait_for(bob, "in-flight", "text_delta")
            gateway.wait_for(companion, "c-in-flight", "text_delta")
            ((pid, _),) = children_running(stack.proc.pid, "gateway")
            os.kill(pid, signal.SIGKILL)
            assert stack.proc.wait(timeout=30) == 1
            stack.err.wait_for(r"the gateway \(pid \d+\) exited unexpectedly with code -9")
        finally:
            gateway.close()

    with yoi_up(*args, env=env, expected_processes=1) as stack:
        gateway = Gateway(stack.gateway)
        try:
            for input_id in ("in-flight", "queued"):
                finished = gateway.wait_for(bob, input_id, "run_finished")
                assert [e["result"] for e in finished] == ["finished"], input_id
            assert gateway.companion() == companion
            finished = gateway.wait_for(companion, "c-in-flight", "run_finished")
            assert len(finished) == 1  # attempt 2 (or host_lost, per the profile): one outcome
            texts = gateway.transcript_texts(bob)
            # Each asked once and answered once (the echo answer repeats the text).
            assert sum("piece29" in text for text in texts) == 2
            assert sum("queued behind it" in text for text in texts) == 2
        finally:
            gateway.close()


def test_a_second_yoi_up_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    env = env_for_up()
    args = ("--processes", "1", "--data-dir", str(tmp_path))
    with yoi_up("--port", str(free_port()), *args, env=env, expected_processes=1) as stack:
        second = yoi("up", "--port", str(free_port()), *args, env=env)
        assert second.returncode == 1
        assert second.stderr.strip() == (
            f"yoi: another `yoi up` is running on the data directory {tmp_path}; stop it "
            "first, or give this one another (--data-dir, YOI_DATA_DIR) or --ephemeral"
        )
        assert second.stdout == ""  # refused before starting anything
        assert stack.proc.poll() is None
        assert Gateway(stack.gateway).http.get("/readyz").status_code == 200


def test_ephemeral_keeps_nothing(tmp_path: Path) -> None:
    env = {**env_for_up(), "YOI_DATA_DIR": str(tmp_path)}  # --ephemeral wins over it
    with yoi_up(
        "--port",
        str(free_port()),
        "--processes",
        "1",
        "--ephemeral",
        env=env,
        expected_processes=1,
    ) as stack:
        found = re.fullmatch(
            r"Data: (\S+) \(ephemeral: deleted when yoi up stops\)", stack.out.seen[0]
        )
        assert found, stack.out.seen
        temporary = Path(found.group(1))
        assert temporary.is_dir() and temporary != tmp_path
        assert stack.stop(signal.SIGINT) == 0
    assert not temporary.exists()
    assert list(tmp_path.iterdir()) == []
    both = yoi("up", "--ephemeral", "--data-dir", str(tmp_path), env=env)
    assert (both.returncode, both.stderr.strip()) == (
        2,
        "yoi: --ephemeral and --data-dir exclude each other",
    )
