"""OpenTelemetry traces with an in-memory exporter: one trace from the gateway's POST through the
Redis input stream to the runtime's queue wait, run and provider call, with no secret, ticket,
path or user text in any attribute; and tracing stays off unless `OTEL_*` configures it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from runtime_worker.member import Member
from shared import tracing
from tests.gateway.support import events_until, finished, running_app, settings_for
from tests.helpers import wait_until

TOKEN = "tracing-secret-token"
TEXT = "my very private words"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The process's SDK provider (installed once: OpenTelemetry allows one per process), with
    an in-memory exporter of this test's own."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    yield exporter
    processor.shutdown()


def by_name(found: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    named = [s for s in found if s.name == name]
    assert len(named) == 1, [s.name for s in found]
    return named[0]


async def test_one_trace_from_the_post_to_the_provider_call(
    spans: InMemorySpanExporter, namespace: str, redis_url: str
) -> None:
    settings = settings_for(
        namespace,
        redis_url=redis_url,
        fleets=["fleet"],
        runtime_id="fleet",
        heartbeat_ms=100,
        lease_ttl_ms=1000,
        api_token=TOKEN,
    )
    member = Member(settings.model_copy(update={"member_id": "m1"}))
    await member.start()
    try:
        async with running_app(settings) as (_app, client):
            client.headers["Authorization"] = f"Bearer {TOKEN}"
            made = await client.post("/api/runtimes/fleet/workers", json={"display_name": "t"})
            worker = f"/api/runtimes/fleet/workers/{made.json()['worker_id']}"
            ticket = (await client.post(f"{worker}/stream-ticket")).json()["ticket"]
            sent = (await client.post(f"{worker}/inputs", json={"text": TEXT})).json()
            await events_until(
                client, f"{worker}/events", sent["cursor"], finished(sent["input_id"])
            )

            async def ended() -> bool:
                return any(s.name == "yoi.run" for s in spans.get_finished_spans())

            await wait_until(ended, timeout_s=10, what="the run span")
    finally:
        await member.stop()

    found = spans.get_finished_spans()
    request = by_name(found, "yoi.send_input")
    wait = by_name(found, "yoi.queue_wait")
    run = by_name(found, "yoi.run")
    call = by_name(found, "yoi.provider_call")
    assert request.context is not None and run.context is not None
    trace_ids = {s.context.trace_id for s in (request, wait, run, call) if s.context}
    assert trace_ids == {request.context.trace_id}
    # The runtime's spans hang under the request's, joined through the input's stream entry.
    assert wait.parent is not None and wait.parent.span_id == request.context.span_id
    assert run.parent is not None and run.parent.span_id == request.context.span_id
    assert call.parent is not None and call.parent.span_id == run.context.span_id
    assert request.kind is trace.SpanKind.SERVER
    assert wait.start_time is not None and request.start_time is not None
    assert wait.start_time >= request.start_time - 10_000_000  # the input's ts, to the ms
    assert run.attributes is not None and run.attributes["yoi.input_id"] == sent["input_id"]
    assert run.attributes["yoi.attempt"] == 1

    for one in found:
        for key, value in (one.attributes or {}).items():
            text = str(value)
            for secret in (TOKEN, ticket, TEXT, "redis://", namespace):
                assert secret not in text, (one.name, key)
            assert "/" not in text, (one.name, key)  # no path, no URL


def test_off_unless_otel_variables_configure_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert not tracing.configured()
    assert tracing.configure("yoi-test") is False
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert tracing.configured()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert not tracing.configured()
