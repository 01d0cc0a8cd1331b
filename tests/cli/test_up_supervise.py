"""`yoi up` supervises: a runtime process killed with SIGKILL is started again and the input it
was answering is answered exactly once; one that keeps dying past its restart budget, the
gateway dying or the private Redis dying stops everything with a message saying which and why."""

from __future__ import annotations

import os
import signal
import uuid

import pytest

from gateway.cli.restarts import BACKOFF_FIRST_S, BACKOFF_MAX_S, RestartBudget
from tests.cli.fleet_http import Gateway, argv_of, children_running
from tests.cli.support import ProcId, alive, assert_all_gone, clean_env, descendants, yoi_up
from tests.helpers import free_port

pytestmark = pytest.mark.slow

LONG_TEXT = " ".join(f"piece{i}" for i in range(30))  # 30 pieces at 100 ms: 3 s of answer


def runtime_processes(root: int) -> set[ProcId]:
    return children_running(root, "runtime")


def test_a_killed_runtime_process_is_restarted_and_its_input_answered_once() -> None:
    env = clean_env(
        YOI_NAMESPACE="t" + uuid.uuid4().hex[:12],
        YOI_ECHO_DELAY_MS="100",
        YOI_LEASE_TTL_MS="1000",
        YOI_HEARTBEAT_MS="200",
    )
    with yoi_up("--port", str(free_port()), env=env, expected_processes=2) as stack:
        gateway = Gateway(stack.gateway)
        try:
            worker_id = gateway.create("bob")
            gateway.send(worker_id, LONG_TEXT, "in-flight")
            gateway.wait_for(worker_id, "in-flight", "text_delta")
            host = gateway.host_pid(worker_id)
            members = runtime_processes(stack.proc.pid)
            assert host in {pid for pid, _ in members}, (host, members)

            os.kill(host, signal.SIGKILL)
            seen = stack.err.wait_for(
                rf"yoi.up: runtime process (\d) \(pid {host}\) exited with code -9; "
                r"restarting it in 0.5s \(restart 1 of 5 within 60s\)"
            )
            restarted = stack.err.wait_for(
                rf"yoi.up: runtime process {seen.group(1)} restarted \(pid (\d+)\)"
            )
            new_pid = int(restarted.group(1))
            stack.tree |= descendants(stack.proc.pid)

            finished = gateway.wait_for(worker_id, "in-flight", "run_finished")
            assert [e["result"] for e in finished] == ["finished"]
            attempts = [
                e["attempt"] for e in gateway.of_input(worker_id, "in-flight", "run_started")
            ]
            assert attempts == [1, 2]  # the new host ran it again; clients drop attempt 1's text
            assert gateway.transcript_texts(worker_id)[-1].count("piece29") == 1

            # Still serving, with both runtime processes (the restarted one among them).
            gateway.send(worker_id, "after the restart", "after")
            assert [e["result"] for e in gateway.wait_for(worker_id, "after", "run_finished")] == [
                "finished"
            ]
            assert new_pid in {pid for pid, _ in runtime_processes(stack.proc.pid)}
            assert len(runtime_processes(stack.proc.pid)) == 2
            assert stack.proc.poll() is None
        finally:
            gateway.close()


def test_a_runtime_process_past_its_restart_budget_stops_everything() -> None:
    env = clean_env(YOI_NAMESPACE="t" + uuid.uuid4().hex[:12], YOI_RESTART_LIMIT="1")
    with yoi_up(
        "--port", str(free_port()), "--processes", "1", env=env, expected_processes=1
    ) as stack:
        (first,) = runtime_processes(stack.proc.pid)
        os.kill(first[0], signal.SIGKILL)
        restarted = stack.err.wait_for(r"yoi.up: runtime process 1 restarted \(pid (\d+)\)")
        second = int(restarted.group(1))
        stack.tree |= descendants(stack.proc.pid)
        os.kill(second, signal.SIGKILL)
        assert stack.proc.wait(timeout=30) == 1
        stack.err.wait_for(
            rf"yoi.up: runtime process 1 \(pid {second}\) exited with code -9, its 1 "
            r"restart\(s\) within 60s are spent; stopping everything"
        )
        assert_all_gone(stack.tree)


def test_the_gateway_dying_stops_everything() -> None:
    env = clean_env(YOI_NAMESPACE="t" + uuid.uuid4().hex[:12])
    with yoi_up(
        "--port", str(free_port()), "--processes", "1", env=env, expected_processes=1
    ) as stack:
        members = runtime_processes(stack.proc.pid)
        (gateway,) = children_running(stack.proc.pid, "gateway")
        os.kill(gateway[0], signal.SIGKILL)
        assert stack.proc.wait(timeout=30) == 1
        stack.err.wait_for(
            rf"yoi.up: the gateway \(pid {gateway[0]}\) exited unexpectedly with code -9; "
            "stopping everything"
        )
        assert_all_gone(stack.tree)
        assert not any(alive(p) for p in members)


def test_the_private_redis_dying_stops_everything() -> None:
    env = clean_env(YOI_NAMESPACE="t" + uuid.uuid4().hex[:12])
    with yoi_up(
        "--port", str(free_port()), "--processes", "1", env=env, expected_processes=1
    ) as stack:
        (redis_server,) = [p for p in stack.tree if "redis-server" in argv_of(p[0])[0]]
        os.kill(redis_server[0], signal.SIGKILL)
        assert stack.proc.wait(timeout=30) == 1
        stack.err.wait_for(
            rf"yoi.up: the private redis-server \(pid {redis_server[0]}\) exited unexpectedly "
            "with code -9; stopping everything"
        )
        assert_all_gone(stack.tree)


def test_the_restart_budget_backs_off_and_forgets_old_restarts() -> None:
    now = [0.0]
    budget = RestartBudget(limit=3, window_s=60, clock=lambda: now[0])
    assert [budget.next_delay() for _ in range(3)] == [
        BACKOFF_FIRST_S,
        BACKOFF_FIRST_S * 2,
        BACKOFF_FIRST_S * 4,
    ]
    assert budget.next_delay() is None  # spent within the window
    now[0] = 60.0  # the first three fall out of the window
    assert budget.next_delay() == BACKOFF_FIRST_S
    assert RestartBudget(limit=100, window_s=1e9).recent() == 0
    many = RestartBudget(limit=100, window_s=1e9, clock=lambda: 0.0)
    assert max(d for d in (many.next_delay() for _ in range(50)) if d is not None) == BACKOFF_MAX_S
    assert RestartBudget(limit=0, window_s=1).next_delay() is None
