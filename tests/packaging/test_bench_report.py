"""The bench's reports: a scenario without a target (a figure to compare builds by) reads "-",
not "no"; one that failed to run reads "no"; a missed target reads "no"."""

from __future__ import annotations

from bench.report import render
from bench.results import ScenarioResult, render_table

ENV = {
    "command": "bench",
    "git_rev": "abc",
    "started_at": "now",
    "cpu_count": 2,
    "cpu_model": "cpu",
    "mem_total_mb": 1,
    "kernel": "k",
    "python": "3.11",
    "redis": "7",
    "wrk": "wrk",
}


def _results() -> list[ScenarioResult]:
    figure = ScenarioResult("hotpath", metrics={"post_inputs_us": 95.0})
    broken = ScenarioResult("hotpath2", errors=["scenario: RuntimeError: answered 429"])
    missed = ScenarioResult("latency")
    missed.check("sse_p50_x_pingpong", 6.0, "<=", 5)
    return [figure, broken, missed]


def test_the_text_table_tells_no_target_from_failed_and_missed() -> None:
    rows = render_table(_results()).splitlines()
    assert any(r.startswith("hotpath ") and r.split()[-1] == "-" for r in rows), rows
    assert any(r.startswith("hotpath2") and r.endswith("no") for r in rows)
    verdicts = [r.split("=> met: ")[1].split()[0] for r in rows if "=> met: " in r]
    assert verdicts == ["-", "no", "no"]


def test_the_markdown_table_tells_no_target_from_failed_and_missed() -> None:
    document = {
        "env": ENV,
        "scenarios": {
            r.name: {**r.to_json(), **({"error": r.errors[0]} if r.errors else {})}
            for r in _results()
        },
    }
    text = render(document)
    assert "| hotpath | (no target) | - | - | - |" in text
    assert "| hotpath2 | (no target) | - | - | no |" in text
    assert "| **latency** | `sse_p50_x_pingpong` | 6 | <= 5 | no |" in text
