"""Prometheus metrics of one gateway app, in a `CollectorRegistry` of its own (no globals, so
several apps in one process, as in tests, never share or collide).

Two choices worth knowing when reading the numbers:

- **Runs by result** (`yoi_runs_total`) come from each runtime's usage totals, read when
  `/metrics` is scraped. They count every run of the runtime, watched or not, and agree across
  gateway replicas; a runtime that does not answer keeps its last known totals.
- **Run latency** (`yoi_run_latency_seconds`) runs from the moment this gateway accepted an input
  to the moment it sees that input's `run_finished` on any stream it tails (SSE hub or long
  poll). A run nobody follows through this gateway is not measured; pending timers are bounded.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.fleet_metrics import FleetCollector
from shared.events import Event
from shared.models import Usage

MAX_PENDING_RUNS = 10_000
PENDING_RUN_TTL_S = 3600.0
UNROUTED = "<unrouted>"
LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class _RunTotals(Collector):
    """`yoi_runs_total{runtime,result}` from the totals gathered at the last scrape."""

    def __init__(self) -> None:
        self.totals: dict[str, dict[str, int]] = {}

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "yoi_runs", "Runs finished, by runtime and result.", labels=["runtime", "result"]
        )
        for runtime_id, by_result in sorted(self.totals.items()):
            for result, count in sorted(by_result.items()):
                family.add_metric([runtime_id, result], count)
        yield family

    def describe(self) -> Iterable[Metric]:
        return []


class Metrics:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry()
        self._clock = clock
        r = self.registry
        self.http_requests = Counter(
            "yoi_http_requests",
            "HTTP requests answered.",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "yoi_http_request_duration_seconds",
            "Time to answer an HTTP request (to the end of its body; streams excluded).",
            ["route", "method"],
            registry=r,
        )
        self.inputs_accepted = Counter(
            "yoi_inputs_accepted", "Inputs accepted (202).", ["runtime"], registry=r
        )
        self.inputs_rejected = Counter(
            "yoi_inputs_rejected", "Inputs refused, by error code.", ["runtime", "code"], registry=r
        )
        self.run_latency = Histogram(
            "yoi_run_latency_seconds",
            "From an input accepted by this gateway to its run_finished seen by this gateway.",
            ["runtime", "result"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.sse_clients = Gauge("yoi_sse_clients", "Open event-stream connections.", registry=r)
        self.sse_readers = Gauge(
            "yoi_sse_readers",
            "Per-Worker store readers feeding the streams (fan-out hubs).",
            registry=r,
        )
        self.sse_lag = Gauge(
            "yoi_sse_stream_lag_events",
            "Events buffered but not yet sent, on the most lagging stream connection.",
            registry=r,
        )
        self.sse_slow_disconnects = Counter(
            "yoi_sse_slow_disconnects",
            "Stream clients disconnected for falling behind.",
            registry=r,
        )
        self.runtime_up = Gauge(
            "yoi_runtime_up",
            "1 when the runtime answered at the last scrape.",
            ["runtime"],
            registry=r,
        )
        self._runs = _RunTotals()
        r.register(self._runs)
        self.fleet = FleetCollector()  # tokens, queues, Workers, members (gateway.fleet_metrics)
        r.register(self.fleet)
        self._pending: OrderedDict[tuple[str, str, str], float] = OrderedDict()

    # -- inputs and runs -------------------------------------------------------------------------

    def input_accepted(self, runtime_id: str, worker_id: str, input_id: str) -> None:
        self.inputs_accepted.labels(runtime_id).inc()
        key = (runtime_id, worker_id, input_id)
        if key in self._pending:
            return  # a repeated input_id: the first acceptance started the clock
        now = self._clock()
        self._pending[key] = now
        while self._pending and (
            len(self._pending) > MAX_PENDING_RUNS
            or now - next(iter(self._pending.values())) > PENDING_RUN_TTL_S
        ):
            self._pending.popitem(last=False)

    def input_rejected(self, runtime_id: str, code: str) -> None:
        self.inputs_rejected.labels(runtime_id, code).inc()

    def saw_events(self, runtime_id: str, events: Sequence[Event]) -> None:
        """Stop the clock of every accepted input whose run_finished went by."""
        if not self._pending:
            return
        for event in events:
            if event.type != "run_finished" or event.input_id is None:
                continue
            started = self._pending.pop((runtime_id, event.worker_id, event.input_id), None)
            if started is not None:
                elapsed = max(0.0, self._clock() - started)
                self.run_latency.labels(runtime_id, event.result.value).observe(elapsed)

    def set_run_totals(self, runtime_id: str, usage: Usage | None) -> None:
        """Totals read at scrape time; None when the runtime did not answer (keep the last)."""
        self.runtime_up.labels(runtime_id).set(0 if usage is None else 1)
        if usage is not None:
            self._runs.totals[runtime_id] = dict(usage.runs_by_result)

    # -- HTTP ------------------------------------------------------------------------------------

    def request(self, route: str, method: str, status: int, duration_s: float | None) -> None:
        self.http_requests.labels(route, method, str(status)).inc()
        if duration_s is not None:
            self.http_duration.labels(route, method).observe(duration_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
