"""A real `yoi gateway` with a data directory: the Companion survives a restart, and an answer
cut short by SIGKILL ends with exactly one visible outcome after the next start."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.gateway_process import Gateway, gateway_command, running_gateway
from tests.helpers import free_port, wait_until_sync

pytestmark = pytest.mark.slow
BI = "/api/runtimes/backend-internal"


def _events(client: httpx.Client, worker_id: str) -> list[dict[str, Any]]:
    page = client.get(f"{BI}/workers/{worker_id}/events", params={"limit": 1000})
    assert page.status_code == 200, page.text
    events: list[dict[str, Any]] = page.json()["events"]
    return events


def _finished(client: httpx.Client, worker_id: str, input_id: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def done() -> bool:
        seen[:] = _events(client, worker_id)
        return any(e["type"] == "run_finished" and e["input_id"] == input_id for e in seen)

    wait_until_sync(done, timeout_s=20, what="the run to finish")
    return seen


def _send(gateway: Gateway, text: str) -> tuple[str, str]:
    with gateway.client() as client:
        sent = client.post("/api/companion/messages", json={"text": text})
        assert sent.status_code == 202, sent.text
        return client.get("/api/companion").json()["worker_id"], sent.json()["input_id"]


def test_the_companion_survives_a_restart(tmp_path: Path) -> None:
    data = {"YOI_DATA_DIR": str(tmp_path / "data")}
    with running_gateway(tmp_path, echo_delay_ms=0, env=data) as first:
        worker_id, input_id = _send(first, "remember me")
        with first.client() as client:
            _finished(client, worker_id, input_id)
            transcript = client.get("/api/companion/transcript").json()
            events = _events(client, worker_id)
        first.process.send_signal(signal.SIGINT)
        assert first.process.wait(timeout=20) == 0, first.log_tail()
    assert f"kept in {tmp_path / 'data'}" in first.log_tail()
    assert str(tmp_path) not in first.log_tail().split("kept in", 1)[1].split("\n", 1)[1]

    with running_gateway(tmp_path, echo_delay_ms=0, env=data) as second:
        with second.client() as client:
            companion = client.get("/api/companion").json()
            assert companion["worker_id"] == worker_id
            assert companion["usage"]["runs"] == 1
            assert client.get("/api/companion/transcript").json() == transcript
            assert [e["text"] for e in transcript["entries"]] == [
                "remember me",
                "You said: remember me",
            ]
            assert _events(client, worker_id)[: len(events)] == events
        worker_id_2, input_id_2 = _send(second, "and now?")
        assert worker_id_2 == worker_id
        with second.client() as client:
            _finished(client, worker_id, input_id_2)


def test_sigkill_mid_answer_ends_with_exactly_one_run_finished(tmp_path: Path) -> None:
    data = {"YOI_DATA_DIR": str(tmp_path / "data")}
    long_text = " ".join(f"word{i}" for i in range(100))
    with running_gateway(tmp_path, echo_delay_ms=100, env=data) as first:
        worker_id, input_id = _send(first, long_text)
        with first.client() as client:
            wait_until_sync(
                lambda: any(e["type"] == "text_delta" for e in _events(client, worker_id)),
                what="the answer to stream",
            )
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=20)

    with running_gateway(tmp_path, echo_delay_ms=0, env=data) as second, second.client() as client:
        events = _finished(client, worker_id, input_id)
        finals = [e for e in events if e["type"] == "run_finished"]
        assert [(e["input_id"], e["result"]) for e in finals] == [(input_id, "finished")]
        starts = [e["attempt"] for e in events if e["type"] == "run_started"]
        assert starts == [1, 2]
        assert client.get("/api/companion").json()["state"] == "idle"
        entries = client.get("/api/companion/transcript").json()["entries"]
        assert [e["role"] for e in entries] == ["user", "assistant"]
        assert entries[1]["text"] == f"You said: {long_text}"


def test_a_second_gateway_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    data = {"YOI_DATA_DIR": str(tmp_path / "data")}
    with running_gateway(tmp_path, echo_delay_ms=0, env=data):
        import os

        env = {**os.environ, **data}
        done = subprocess.run(
            gateway_command(free_port()),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode != 0
    assert "in use by another process" in done.stdout + done.stderr
    assert str(tmp_path / "data") not in done.stderr
