"""End to end over real sockets: `python -m gateway` in its own process, and for the fleet two
`yoi runtime` member processes on the real Redis. A Worker's answer is read through SSE parsed
as a browser would, the connection is dropped mid-answer, resumed with `Last-Event-ID`, and the
events received add up to the cursor API's log exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.sse_parser import Message, SseParser
from tests.helpers import free_port, wait_until, wait_until_sync

pytestmark = pytest.mark.slow

TOKEN = "e2e-token-never-in-logs"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WORDS = " ".join(f"word{i}" for i in range(40))
MEMBER = "import sys; from gateway.cli import main; sys.exit(main())"


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._file = log.open("wb")
        self.proc = subprocess.Popen(args, env=env, stdout=self._file, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(5)
        self._file.close()
        return code


def environment(namespace: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOI_")}
    env.update(
        YOI_NAMESPACE=namespace,
        YOI_API_TOKEN=TOKEN,
        YOI_ECHO_DELAY_MS="15",
        YOI_HEARTBEAT_MS="200",
        YOI_LEASE_TTL_MS="2000",
        YOI_SWEEP_INTERVAL_MS="300",
        YOI_DRAIN_GRACE_S="1",
        YOI_DATA_DIR="",  # the embedded Workers in memory: never the real data directory
        PYTHONUNBUFFERED="1",
        **extra,
    )
    env.pop("REDIS_URL", None)
    return env


@pytest.fixture
def gateway_process(
    request: pytest.FixtureRequest, tmp_path: Path, namespace: str, redis_url: str
) -> Iterator[tuple[str, Process]]:
    port = free_port()
    args = [sys.executable, "-m", "gateway", "--host", "127.0.0.1", "--port", str(port)]
    with_fleet = getattr(request, "param", False)
    if with_fleet:
        args += ["--redis-url", redis_url, "--fleet", "fleet"]
    process = Process(args, environment(namespace), tmp_path / "gateway.log")
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert process.proc.poll() is None, process.output()
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until_sync(healthy, timeout_s=30, what="the gateway process")
        yield base, process
    finally:
        process.stop()


@pytest.fixture
def members(tmp_path: Path, namespace: str, redis_url: str) -> Iterator[list[Process]]:
    args = [
        sys.executable,
        "-c",
        MEMBER,
        "runtime",
        "--redis-url",
        redis_url,
        "--runtime-id",
        "fleet",
    ]
    started = [
        Process(args, environment(namespace), tmp_path / f"member-{index}.log")
        for index in range(2)
    ]
    try:
        yield started
    finally:
        for member in started:
            member.stop()


async def read_stream(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    *,
    stop_after: int | None = None,
    until_input: str | None = None,
) -> list[Message]:
    """Read SSE like a browser; return after `stop_after` messages (dropping the connection)
    or once `until_input`'s run_finished arrived."""
    parser = SseParser()
    async with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for chunk in response.aiter_raw():
            parser.feed(chunk)
            if stop_after is not None and len(parser.messages) >= stop_after:
                break
            if until_input is not None and any(
                m.event == "run_finished" and m.json().get("input_id") == until_input
                for m in parser.messages
            ):
                break
    return parser.messages


async def drop_and_resume(client: httpx.AsyncClient, base: str, runtime_id: str) -> None:
    workers = f"{base}/api/runtimes/{runtime_id}/workers"
    created = await client.post(workers, json={"display_name": "e2e"}, headers=AUTH)
    assert created.status_code == 201, created.text
    worker = f"{workers}/{created.json()['worker_id']}"

    async def hosted() -> bool:  # a fleet member takes the Worker (its state_changed) on its own
        detail = (await client.get(worker, headers=AUTH)).json()
        return bool(detail["state"] != "pending")

    await wait_until(hosted, what="a member hosting the new worker")
    head = (await client.get(f"{worker}/events?after=now", headers=AUTH)).json()["cursor"]
    ticket = (await client.post(f"{worker}/stream-ticket", headers=AUTH)).json()["ticket"]

    sent = await client.post(f"{worker}/inputs", json={"text": WORDS}, headers=AUTH)
    assert sent.status_code == 202
    input_id = sent.json()["input_id"]
    # A browser's EventSource: a ticket in the URL (never the token), dropped mid-answer.
    first = await read_stream(
        client, f"{worker}/events/stream?after={head}&ticket={ticket}", {}, stop_after=5
    )
    assert len(first) >= 5 and all(m.block_had_id for m in first)
    assert not any(m.event == "run_finished" for m in first), "the answer ended before the drop"
    resume_from = first[-1].last_event_id

    async def freed() -> bool:
        metrics = (await client.get(f"{base}/metrics", headers=AUTH)).text
        return "\nyoi_sse_clients 0.0" in metrics and "\nyoi_sse_readers 0.0" in metrics

    await wait_until(freed, what="the dropped connection's resources freed")
    # The console's way: fetch with the Authorization header and Last-Event-ID.
    rest = await read_stream(
        client,
        f"{worker}/events/stream?after={head}",
        {**AUTH, "Last-Event-ID": resume_from},
        until_input=input_id,
    )
    received = [m.json() for m in first + rest]
    log: list[dict[str, Any]] = []
    cursor = head
    while True:  # the cursor API, page by page
        page = (await client.get(f"{worker}/events", params={"after": cursor}, headers=AUTH)).json()
        if not page["events"]:
            break
        log += page["events"]
        cursor = page["cursor"]
    assert received == log[: len(received)], "a gap or a repeat"
    assert [e["cursor"] for e in received] == [m.last_event_id for m in first + rest]
    assert [e["result"] for e in received if e["type"] == "run_finished"] == ["finished"]
    answer = "".join(e["text"] for e in received if e["type"] == "text_delta")
    assert answer == f"You said: {WORDS}"
    if runtime_id == "fleet":
        assert received[0]["type"] == "user_message"


def assert_clean_log(process: Process, ticket_marker: str = "ticket=") -> None:
    output = process.output()
    assert TOKEN not in output and ticket_marker not in output
    assert "Traceback" not in output and "after=" not in output
    assert "GET /api/runtimes/{runtime_id}/workers/{worker_id}/events/stream 200" in output


async def test_embedded_stream_drop_and_resume(gateway_process: tuple[str, Process]) -> None:
    base, process = gateway_process
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.get(f"{base}/api/runtimes")).status_code == 401
        await drop_and_resume(client, base, "backend-internal")
        assert (await client.get(f"{base}/readyz")).status_code == 200
    assert process.stop() == 0
    assert_clean_log(process)


@pytest.mark.parametrize("gateway_process", [True], indirect=True)
async def test_fleet_with_two_member_processes(
    gateway_process: tuple[str, Process], members: list[Process]
) -> None:
    base, process = gateway_process
    async with httpx.AsyncClient(timeout=30) as client:

        async def two_alive() -> bool:
            detail = (await client.get(f"{base}/api/runtimes/fleet", headers=AUTH)).json()
            alive = [m for m in detail.get("diagnostics", {}).get("members", []) if m["alive"]]
            return len(alive) == 2

        await wait_until(two_alive, timeout_s=30, what="two alive members")
        assert (await client.get(f"{base}/readyz")).status_code == 200
        await drop_and_resume(client, base, "fleet")
    assert process.stop() == 0
    assert_clean_log(process)
    for member in members:
        assert member.stop() == 0, member.output()


async def test_sigterm_ends_open_streams_and_exits_cleanly(
    gateway_process: tuple[str, Process],
) -> None:
    base, process = gateway_process
    async with httpx.AsyncClient(timeout=30) as client:
        companion = f"{base}/api/companion/events/stream"
        async with client.stream("GET", companion, headers=AUTH) as response:
            assert response.status_code == 200
            process.proc.send_signal(signal.SIGTERM)
            async for _chunk in response.aiter_raw():
                pass  # the server ends the stream as it shuts down
    assert process.stop(timeout_s=20) == 0
    assert "Traceback" not in process.output()
