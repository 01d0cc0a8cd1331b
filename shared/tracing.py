"""OpenTelemetry traces: an optional extra (`pip install yoi-fleet[otel]`), off unless the
standard `OTEL_*` variables configure an exporter.

One input is one trace: the gateway's request span puts its context (W3C `traceparent`) into
the input's stream entry (field `tc`), and the runtime process that takes the input opens the
queue-wait, run and provider-call spans under it. Without the extra, or with it but nothing
configured, every function here is a cheap no-op (OpenTelemetry's own no-op tracer).

Span attributes are ids and outcomes only (runtime, worker, input and run ids, attempt,
result): never a token, a stream ticket, a key, a path or a user's text.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("yoi.tracing")

TRACER_NAME = "yoi-fleet"
_CONFIG_VARS = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)
Attributes = Mapping[str, str | int | float | bool]

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace

    _PROXY: type = trace.ProxyTracerProvider  # the stand-in until a provider is set
except ImportError:  # the extra is not installed: tracing stays off
    trace = None  # type: ignore[assignment]


def configured() -> bool:
    """Whether the environment asks for traces (and the extra can give them)."""
    wanted = any(os.environ.get(name) for name in _CONFIG_VARS)
    return wanted and trace is not None and os.environ.get("OTEL_TRACES_EXPORTER") != "none"


def configure(service_name: str) -> bool:
    """Install an SDK tracer provider exporting as `OTEL_*` says, once per process; a provider
    set already (by the application, or a test) is kept. Returns whether traces are on."""
    if not configured():
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return True
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    exporter: Any
    if os.environ.get("OTEL_TRACES_EXPORTER") == "console":
        exporter = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning("OTEL_* is set but no OTLP exporter is installed: traces are off")
            return False
        exporter = OTLPSpanExporter()  # endpoint, headers and timeout from OTEL_* itself
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    log.info("traces on for %s", service_name)
    return True


def _recording() -> bool:
    """Whether a tracer provider is installed (by `configure`, the application or a test).
    Without one a span is OpenTelemetry's non-recording one carrying the current context on,
    so a span without a `parent` to join changes nothing and is skipped (its context attach
    and span objects were about 6 % of a member's CPU per run); one with a parent still
    attaches it, for `carrier` to pass on."""
    return not isinstance(trace.get_tracer_provider(), _PROXY)


def carrier() -> dict[str, str]:
    """The current trace context as W3C headers, to store with an input; empty when off."""
    if trace is None:
        return {}
    found: dict[str, str] = {}
    propagate.inject(found)
    return found


@contextmanager
def span(
    name: str,
    *,
    attributes: Attributes | None = None,
    parent: Mapping[str, str] | None = None,
    start_s: float | None = None,
    kind: str = "internal",
) -> Iterator[None]:
    """A span around the block, current inside it. `parent`: a stored `carrier()` to join;
    `start_s`: a unix time the span began at (the queue wait began when the input came)."""
    if trace is None or (not parent and not _recording()):
        yield
        return
    context = propagate.extract(dict(parent)) if parent else None
    token = otel_context.attach(context) if context is not None else None
    try:
        tracer = trace.get_tracer(TRACER_NAME)
        start_ns = None if start_s is None else int(start_s * 1e9)
        span_kind = trace.SpanKind.SERVER if kind == "server" else trace.SpanKind.INTERNAL
        with tracer.start_as_current_span(
            name, kind=span_kind, attributes=dict(attributes or {}), start_time=start_ns
        ):
            yield
    finally:
        if token is not None:
            otel_context.detach(token)


__all__ = ["Attributes", "carrier", "configure", "configured", "span"]
