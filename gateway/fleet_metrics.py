"""Fleet figures for `/metrics`, read from each runtime's records and members at scrape time.

Every label set is bounded: runtime, profile, Worker state, member state, token direction and
error code (the typed codes, a closed set) — never a worker, member or input id. Totals are sums
over the Workers the store still holds: when a stopped Worker's keys expire after the retention
period its counts leave the sums, which Prometheus reads as a counter reset.

- `yoi_tokens_total{runtime,profile,direction}`: tokens in (`input`) and out (`output`).
- `yoi_workers{runtime,state}`, `yoi_queued_inputs{runtime}` (accepted, not yet finished, running
  ones included) and `yoi_queue_depth_max{runtime}` (the longest one Worker's queue).
- `yoi_members{runtime,state}`: alive / draining / dead runtime processes (fleets only).
- `yoi_lease_takeovers_total{runtime}`: lease acquisitions after a Worker's first (each new epoch
  is a new host taking over: after a death, a drain or a hand-back).
- `yoi_run_errors_total{runtime,code}` (provider errors by kind, timeouts, `host_lost`…) and
  `yoi_dead_letters_total{runtime}` (its `dead_letter` share, named for alerting).
- `yoi_webhook_deliveries_total{runtime,outcome}`: webhook tries that were `delivered`,
  `retried` (another try is scheduled) or `failed` (given up), counted in the store.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from runtime_worker.runtime import Runtime
from runtime_worker.store.base import WorkerRecord
from runtime_worker.store.outcome import total_usage
from shared.errors import RuntimeUnavailable
from shared.models import MemberInfo, RuntimeKind, Usage, WorkerState
from shared.webhooks import DeliveryOutcome

DEAD_LETTER = "dead_letter"
MEMBER_STATES = ("alive", "draining", "dead")


@dataclass
class FleetFigures:
    """One runtime's figures, computed once per scrape from its records and members."""

    tokens: Counter[tuple[str, str]] = field(default_factory=Counter)
    workers: Counter[str] = field(default_factory=Counter)
    queued: int = 0
    queue_max: int = 0
    members: Counter[str] | None = None  # None for an embedded runtime
    takeovers: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    webhooks: dict[str, int] = field(default_factory=dict)


def figures_of(records: Iterable[WorkerRecord], members: list[MemberInfo] | None) -> FleetFigures:
    figures = FleetFigures()
    for record in records:
        figures.tokens[(record.profile, "input")] += record.usage.input_tokens
        figures.tokens[(record.profile, "output")] += record.usage.output_tokens
        figures.workers[record.state.value] += 1
        figures.queued += record.queue_depth
        figures.queue_max = max(figures.queue_max, record.queue_depth)
        figures.takeovers += max(0, record.epoch - 1)
        figures.errors.update(record.usage.errors_by_code)
    if members is not None:
        figures.members = Counter(
            "dead" if not m.alive else "draining" if m.draining else "alive" for m in members
        )
    return figures


async def read_runtime(runtime: Runtime, timeout_s: float) -> tuple[Usage, FleetFigures] | None:
    """One read of a runtime's records (and members): its usage totals and fleet figures; None
    when it does not answer in time (the gateway keeps showing the last figures)."""
    try:
        async with asyncio.timeout(timeout_s):
            records = await runtime.store.list_workers()
            members = await runtime.members() if runtime.kind is RuntimeKind.FLEET else None
            webhooks = await runtime.store.delivery_counts()
    except (RuntimeUnavailable, TimeoutError):
        return None
    figures = figures_of(records, members)
    figures.webhooks = webhooks
    return total_usage(records), figures


class FleetCollector(Collector):
    """The families above, from the figures of the last scrape of each runtime."""

    def __init__(self) -> None:
        self.figures: dict[str, FleetFigures] = {}

    def collect(self) -> Iterable[Metric]:
        tokens = CounterMetricFamily(
            "yoi_tokens",
            "LLM tokens, by runtime, profile and direction.",
            labels=["runtime", "profile", "direction"],
        )
        workers = GaugeMetricFamily("yoi_workers", "Workers by state.", labels=["runtime", "state"])
        queued = GaugeMetricFamily(
            "yoi_queued_inputs", "Inputs accepted and not finished.", labels=["runtime"]
        )
        queue_max = GaugeMetricFamily(
            "yoi_queue_depth_max", "The longest queue of one Worker.", labels=["runtime"]
        )
        members = GaugeMetricFamily(
            "yoi_members", "Runtime processes by state.", labels=["runtime", "state"]
        )
        takeovers = CounterMetricFamily(
            "yoi_lease_takeovers", "Lease acquisitions after a Worker's first.", labels=["runtime"]
        )
        errors = CounterMetricFamily(
            "yoi_run_errors", "Runs ended by an error, by its code.", labels=["runtime", "code"]
        )
        dead = CounterMetricFamily(
            "yoi_dead_letters",
            "Inputs dead-lettered after repeated deliveries.",
            labels=["runtime"],
        )
        webhooks = CounterMetricFamily(
            "yoi_webhook_deliveries",
            "Webhook delivery tries, by outcome.",
            labels=["runtime", "outcome"],
        )
        for runtime_id, figures in sorted(self.figures.items()):
            for (profile, direction), count in sorted(figures.tokens.items()):
                tokens.add_metric([runtime_id, profile, direction], count)
            for state in WorkerState:
                workers.add_metric([runtime_id, state.value], figures.workers[state.value])
            queued.add_metric([runtime_id], figures.queued)
            queue_max.add_metric([runtime_id], figures.queue_max)
            if figures.members is not None:
                for state_name in MEMBER_STATES:
                    members.add_metric([runtime_id, state_name], figures.members[state_name])
            takeovers.add_metric([runtime_id], figures.takeovers)
            for code, count in sorted(figures.errors.items()):
                errors.add_metric([runtime_id, code], count)
            dead.add_metric([runtime_id], figures.errors[DEAD_LETTER])
            for outcome in DeliveryOutcome:
                webhooks.add_metric([runtime_id, outcome.value], figures.webhooks.get(outcome, 0))
        yield from (tokens, workers, queued, queue_max, members, takeovers, errors, dead, webhooks)

    def describe(self) -> Iterable[Metric]:
        return []
