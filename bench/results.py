"""Scenario results: the JSON shape of issue 7 and the table printed at the end of a run."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from bench.steal import WARN_PCT

Number = float | int
Op = Literal["<=", ">="]


@dataclass(frozen=True)
class Check:
    """One target: `value op limit`; a missing value never counts as met."""

    name: str
    value: float | None
    op: Op
    limit: float

    @property
    def met(self) -> bool:
        if self.value is None or math.isnan(self.value):
            return False
        return self.value <= self.limit if self.op == "<=" else self.value >= self.limit

    @property
    def target(self) -> str:
        return f"{self.op} {self.limit:g}"


@dataclass
class ScenarioResult:
    """What one scenario measured; `metrics` is the Yoi side, `ceiling` the peers beside it."""

    name: str
    metrics: dict[str, Any] = field(default_factory=dict)
    ceiling: dict[str, Any] = field(default_factory=dict)
    ratio: dict[str, float | None] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    loadgen: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list, repr=False)
    duration_s: float = 0.0
    loadavg_1m_at_start: float = 0.0
    steal_pct: dict[str, float] = field(default_factory=dict)  # CPU steal by side (`recorded`)

    def check(self, name: str, value: float | None, op: Op, limit: float) -> None:
        self.checks.append(Check(name, value, op, limit))

    @property
    def met(self) -> bool:
        return bool(self.checks) and not self.errors and all(c.met for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "metrics": _clean(self.metrics),
            "ceiling": _clean(self.ceiling),
            "ratio": _clean(self.ratio),
            "target": {c.name: c.target for c in self.checks},
            "met": self.met,
            "checks": {
                c.name: {"value": _clean(c.value), "target": c.target, "met": c.met}
                for c in self.checks
            },
            "loadgen": _clean(self.loadgen),
            "duration_s": round(self.duration_s, 1),
            "loadavg_1m_at_start": self.loadavg_1m_at_start,
            "steal_pct": dict(self.steal_pct),
        }
        if self.notes:
            body["notes"] = self.notes
        if self.errors:
            body["error"] = "; ".join(self.errors)
        return body


def _clean(value: Any) -> Any:
    """JSON has no NaN: a missing measurement is written as null."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 4)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _kv_lines(label: str, values: dict[str, Any], width: int = 96) -> list[str]:
    parts = [f"{k}={_fmt(v)}" for k, v in values.items()]
    lines: list[str] = []
    current = f"  {label:<8}"
    for part in parts:
        if len(current) + len(part) + 2 > width and current.strip() != label:
            lines.append(current.rstrip())
            current = " " * 10
        current += part + "  "
    lines.append(current.rstrip())
    return lines


def render_table(results: list[ScenarioResult]) -> str:
    """A plain-text report: per scenario its checks as rows, then metrics and ceilings."""
    out: list[str] = []
    header = f"{'scenario':<11} {'check':<34} {'value':>10} {'target':>10}  met"
    out.append(header)
    out.append("-" * len(header))
    for result in results:
        if not result.checks:  # a figure to compare builds by: nothing to meet unless it failed
            mark = "no" if result.errors else "-"
            out.append(f"{result.name:<11} {'(no target)':<34} {'-':>10} {'-':>10}  {mark}")
        for index, check in enumerate(result.checks):
            name = result.name if index == 0 else ""
            mark = "yes" if check.met else "no"
            out.append(
                f"{name:<11} {check.name:<34} {_fmt(check.value):>10} {check.target:>10}  {mark}"
            )
        verdict = "yes" if result.met else "-" if not result.checks and not result.errors else "no"
        out.append(
            f"{'':<11} => met: {verdict}  ({result.duration_s:.0f} s, "
            f"load avg {result.loadavg_1m_at_start:g} at start)"
        )
        if warning := steal_warning(result.steal_pct):
            out.append(f"{'':<11} !! {warning}")
    out.append("")
    for result in results:
        out.append(f"[{result.name}]")
        out.extend(_kv_lines("metrics", result.metrics))
        out.extend(_kv_lines("ceiling", result.ceiling))
        out.extend(_kv_lines("ratio", result.ratio))
        if result.loadgen:
            out.extend(_kv_lines("loadgen", result.loadgen))
        for note in result.notes:
            out.append(f"  note    {note}")
        for error in result.errors:
            out.append(f"  ERROR   {error}")
    return "\n".join(out)


def steal_warning(steal_pct: dict[str, float]) -> str | None:
    """What a report says of the sides that ran under CPU steal (`bench.steal.WARN_PCT`)."""
    high = {side: pct for side, pct in steal_pct.items() if pct >= WARN_PCT}
    if not high:
        return None
    sides = ", ".join(f"{side} {pct:g} %" for side, pct in high.items())
    return f"CPU steal during {sides}: those numbers measure the machine as much as Yoi"
