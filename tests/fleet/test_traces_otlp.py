"""Traces across two real processes: the gateway (`python -m gateway`) and one runtime member
(`python -m runtime_worker`), each with the `otel` extra configured only by the standard
`OTEL_*` variables, export OTLP/HTTP to a collector this test runs. One input is one trace: the
gateway's HTTP request span, then (in the member, joined through the trace context carried in
the input's Redis stream entry) the queue wait, the run and the provider call. No attribute of
any span or resource holds the token, the stream ticket, a key, a path or the user's text."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fleet.otlp_collector import Collector, Span, otlp_collector
from tests.fleet.support import FAST_ENV, Fleet
from tests.helpers import free_port, wait_until_sync

pytestmark = pytest.mark.slow

TOKEN = "otlp-trace-secret-token"
TEXT = "my very private words about apples"
SERVER_KIND = 2  # opentelemetry.proto.trace.v1.Span.SpanKind.SPAN_KIND_SERVER
NAMES = ("yoi.send_input", "yoi.queue_wait", "yoi.run", "yoi.provider_call")


def otel_env(collector: Collector) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export batches every 100 ms, not every 5 s
    }


@pytest.fixture
def collector() -> Iterator[Collector]:
    with otlp_collector() as running:
        yield running


@pytest.fixture
def gateway(
    fleet: Fleet, collector: Collector, redis_url: str, namespace: str, tmp_path: Path
) -> Iterator[str]:
    fleet.start("m1", raw_env=otel_env(collector))
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("YOI_")},
        **FAST_ENV,
        **otel_env(collector),
        "YOI_REDIS_URL": redis_url,
        "YOI_NAMESPACE": namespace,
        "YOI_FLEETS": "fleet",
        "YOI_API_TOKEN": TOKEN,
        "YOI_DATA_DIR": "",
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / "gateway.log"
    args = [sys.executable, "-m", "gateway", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, log.read_text(errors="replace")
        try:
            return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until_sync(ready, timeout_s=60, what="the gateway ready with its member")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


def one_named(spans: list[Span], name: str) -> Span:
    named = [s for s in spans if s.name == name]
    assert len(named) == 1, [s.name for s in spans]
    return named[0]


def test_one_trace_from_the_http_post_to_the_provider_call_across_processes(
    gateway: str, collector: Collector, namespace: str
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=gateway, headers=headers, timeout=10) as api:
        made = api.post("/api/runtimes/fleet/workers", json={"display_name": "traced"})
        assert made.status_code == 201, made.text
        worker = f"/api/runtimes/fleet/workers/{made.json()['worker_id']}"
        ticket = api.post(f"{worker}/stream-ticket").json()["ticket"]
        sent = api.post(f"{worker}/inputs", json={"text": TEXT})
        assert sent.status_code == 202, sent.text
        accepted = sent.json()
        cursor = accepted["cursor"]

        def answered() -> bool:
            nonlocal cursor
            page = api.get(f"{worker}/events", params={"after": cursor, "wait_ms": 1000}).json()
            cursor = page["cursor"]
            return any(e["type"] == "run_finished" for e in page["events"])

        wait_until_sync(answered, timeout_s=30, what="the input's run_finished")

    def exported() -> bool:
        names = {s.name for s in collector.received()}
        return all(name in names for name in NAMES)

    wait_until_sync(exported, timeout_s=30, what=f"the spans {NAMES} at the collector")
    spans = collector.received()
    request, wait, run, call = (one_named(spans, name) for name in NAMES)

    # Two processes, one trace.
    assert request.service == "yoi-gateway"
    assert {wait.service, run.service, call.service} == {"yoi-runtime"}
    assert {s.trace_id for s in (request, wait, run, call)} == {request.trace_id}
    assert request.kind == SERVER_KIND and request.parent_span_id == ""
    assert wait.parent_span_id == request.span_id  # joined through the input's stream entry
    assert run.parent_span_id == request.span_id
    assert call.parent_span_id == run.span_id
    assert wait.start_ns >= request.start_ns - 10_000_000  # the wait began at the input's ts
    assert run.attributes["yoi.input_id"] == accepted["input_id"]
    assert run.attributes["yoi.attempt"] == 1

    secrets = (TOKEN, ticket, TEXT, "apples", "redis://", namespace, str(Path.home()))
    for span in spans:
        every = [span.attributes, span.resource, *span.event_attributes]
        for attributes in every:
            for key, value in attributes.items():
                text = str(value)
                for secret in secrets:
                    assert secret not in text, (span.service, span.name, key)
                assert "/" not in text, (span.service, span.name, key, text)  # no path, no URL
