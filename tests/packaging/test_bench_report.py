"""The bench's reports: a scenario without a target (a figure to compare builds by) reads "-",
not "no"; one that failed to run reads "no"; a missed target reads "no"."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import steal
from bench.harness import recorded
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


def test_cpu_steal_during_a_side_is_said_beside_its_numbers(tmp_path: Path) -> None:
    """A side measured while the hypervisor took the CPUs is flagged in both reports; a quiet
    one is only listed."""
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3\n")
    stop = steal.meter(stat)
    stat.write_text("cpu  150 0 150 850 0 0 0 50 0 0\n")  # 50 of 200 ticks stolen
    assert stop() == 25.0
    assert steal.cpu_ticks(tmp_path / "missing") is None
    result = ScenarioResult("latency", steal_pct={"pingpong": 25.0, "yoi": 0.4})
    result.check("sse_p50_x_pingpong", 3.3, "<=", 5)
    table = render_table([result])
    assert "CPU steal during pingpong 25 %" in table and "yoi 0.4" not in table
    body = result.to_json()
    assert body["steal_pct"] == {"pingpong": 25.0, "yoi": 0.4}
    markdown = render({"scenarios": {"latency": body}, "env": ENV})
    assert "- CPU steal %: `pingpong` 25, `yoi` 0.4" in markdown
    assert "**CPU steal during pingpong 25 %" in markdown
    quiet = ScenarioResult("tokens", steal_pct={"scenario": 0.2})
    assert "CPU steal during" not in render_table([quiet])


def test_a_recorded_side_keeps_its_steal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 100 800 0 0 0 0 0 0\n")
    monkeypatch.setattr(steal, "PROC_STAT", stat)
    result = ScenarioResult("x")
    with recorded(result, "side"):
        stat.write_text("cpu  190 0 100 800 0 0 0 10 0 0\n")
    with recorded(result, "broken"):
        stat.write_text("cpu  280 0 100 800 0 0 0 20 0 0\n")
        raise RuntimeError("a side that fails keeps its steal too")
    assert result.steal_pct == {"side": 10.0, "broken": 10.0}
    assert result.errors == ["broken: RuntimeError: a side that fails keeps its steal too"]
