"""Render a results JSON as the Markdown that goes into BENCHMARKS.md, so the published table
is generated from a run, never typed by hand.

Run: python -m bench.report bench/results/latest.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.results import steal_warning


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"`{k}` {_fmt(v)}" for k, v in values.items()) or "-"


def render(document: dict[str, Any]) -> str:
    env = document["env"]
    lines = [
        f"Command: `{env['command']}` at git `{env['git_rev']}`, {env['started_at']}.",
        "",
        f"Machine: {env['cpu_count']} x {env['cpu_model']}, {env['mem_total_mb']:,} MB RAM, "
        f"Linux {env['kernel']}; Python {env['python']}; Redis {env['redis']}; {env['wrk']}.",
        "",
        "| scenario | check | value | target | met |",
        "| --- | --- | ---: | ---: | :---: |",
    ]
    for name, scenario in document["scenarios"].items():
        checks = scenario.get("checks", {})
        if not checks:  # a figure to compare builds by; "no" only when it failed to run
            mark = "no" if "error" in scenario else "-"
            lines.append(f"| {name} | (no target) | - | - | {mark} |")
        for index, (check, body) in enumerate(checks.items()):
            label = f"**{name}**" if index == 0 else ""
            met = "yes" if body["met"] else "no"
            lines.append(
                f"| {label} | `{check}` | {_fmt(body['value'])} | {body['target']} | {met} |"
            )
    lines.append("")
    for name, scenario in document["scenarios"].items():
        lines.append(
            f"**{name}** ({_fmt(scenario.get('duration_s'))} s, load average "
            f"{_fmt(scenario.get('loadavg_1m_at_start'))} at start)"
        )
        lines.append(f"- Yoi: {_pairs(scenario['metrics'])}")
        lines.append(f"- ceiling / peers: {_pairs(scenario['ceiling'])}")
        lines.append(f"- load generator: {_pairs(scenario.get('loadgen', {}))}")
        if scenario.get("steal_pct"):
            lines.append(f"- CPU steal %: {_pairs(scenario['steal_pct'])}")
        if warning := steal_warning(scenario.get("steal_pct", {})):
            lines.append(f"- **{warning}**")
        lines.extend(f"- note: {note}" for note in scenario.get("notes", []))
        if "error" in scenario:
            lines.append(f"- error: {scenario['error']}")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("json_file", type=Path)
    args = parser.parse_args()
    print(render(json.loads(args.json_file.read_text())))


if __name__ == "__main__":
    main()
