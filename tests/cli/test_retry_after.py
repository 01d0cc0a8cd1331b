"""`yoi` honours `Retry-After`: against a real gateway process whose Worker is at its queue bound
(`YOI_MAX_QUEUED_INPUTS=1`, one long answer running), `yoi send` waits out each 429, says so on
stderr, and either gets through once the queue has room or exits `OVERLOADED` after `--retries`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.cli.errors import OK, OVERLOADED
from tests.browser.gateway_process import Gateway, running_gateway
from tests.cli.support import Lines, clean_env, finish, start, yoi

pytestmark = pytest.mark.slow

LONG_TEXT = " ".join(f"word{i}" for i in range(400))  # 400 tokens at 50 ms: 20 s of answer
WAITING = r"^yoi: the gateway answered 429 rate_limited; retrying in 1 s \((\d+)/(\d+)\)$"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    env = {"YOI_MAX_QUEUED_INPUTS": "1", "YOI_DATA_DIR": ""}
    with running_gateway(tmp_path, echo_delay_ms=50, env=env) as running:
        yield running


def busy_worker(client: httpx.Client) -> str:
    """A Worker whose one allowed input is a long answer still running: the next is refused."""
    made = client.post("/api/runtimes/backend-internal/workers", json={"display_name": "full"})
    assert made.status_code == 201, made.text
    worker = made.json()["worker_id"]
    path = f"/api/runtimes/backend-internal/workers/{worker}"
    sent = client.post(f"{path}/inputs", json={"text": LONG_TEXT, "strategy": "enqueue"})
    assert sent.status_code == 202, sent.text
    over = client.post(f"{path}/inputs", json={"text": "one more", "strategy": "enqueue"})
    assert over.status_code == 429 and over.headers["Retry-After"] == "1", over.text
    return f"backend-internal/{worker}"


def test_send_waits_out_retry_after_then_exits_overloaded(gateway: Gateway) -> None:
    with gateway.client() as client:
        ref = busy_worker(client)
        done = yoi(
            "--gateway", gateway.url, "send", ref, "hi", "--strategy", "enqueue",
            "--retries", "2",
            env=clean_env(),
        )  # fmt: skip
    assert done.returncode == OVERLOADED, (done.returncode, done.stderr)
    lines = done.stderr.splitlines()
    waits = [line for line in lines if "retrying" in line]
    assert [w.rsplit("(", 1)[1] for w in waits] == ["1/2)", "2/2)"], lines
    assert lines[-1].startswith("yoi: ") and "(rate_limited)" in lines[-1], lines
    assert done.stdout == ""  # nothing was accepted, so nothing streamed


def test_send_gets_through_once_the_queue_has_room(gateway: Gateway) -> None:
    with gateway.client() as client:
        ref = busy_worker(client)
        env = clean_env(YOI_GATEWAY=gateway.url)
        args = ("send", ref, "hello there", "--strategy", "enqueue", "--retries", "20")
        proc = start(*args, env=env)
        err = Lines(proc.stderr)
        try:
            first = err.wait_for(WAITING, timeout_s=30)
            assert first.group(1) == "1" and first.group(2) == "20"
            # The running answer ends: the queue has room for the CLI's next try.
            cancelled = client.post(f"/api/runtimes/{ref.replace('/', '/workers/')}/cancel")
            assert cancelled.status_code == 200, cancelled.text
            proc.wait(timeout=30)  # a few lines of output: the pipe never fills
            assert proc.stdout is not None
            out = proc.stdout.read()
        finally:
            finish(proc)
    assert proc.returncode == OK, (proc.returncode, err.rest())
    assert out.strip() == "You said: hello there"  # the echo provider's answer
