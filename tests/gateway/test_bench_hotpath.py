"""The hot-path CPU benchmark runs and reports a number per route (behaviour, not timings)."""

from __future__ import annotations

import math
from pathlib import Path

from bench.harness import run_one
from bench.scenarios import SCENARIOS
from bench.scenarios.hotpath import measure

ROUTES = ("post_inputs_us", "get_events_us", "post_create_us")


async def test_measure_reports_positive_microseconds_per_route() -> None:
    numbers = await measure(5)
    assert set(numbers) == set(ROUTES)
    for route in ROUTES:
        assert math.isfinite(numbers[route]) and numbers[route] >= 0, (route, numbers)


def test_registered_scenario_fills_the_result_shape(tmp_path: Path) -> None:
    result = run_one("hotpath", SCENARIOS["hotpath"], quick=True, log_root=tmp_path)
    assert result.errors == []
    assert result.metrics["requests_per_route"] == 300
    assert all(result.metrics[route] > 0 for route in ROUTES)
    written = result.to_json()["metrics"]["post_create_us"]
    assert written == round(result.metrics["post_create_us"], 4)
