"""Run scenarios one after another, each boxed: a scenario that breaks records an error entry
(met: false) and the run goes on, because a benchmark is a report, not a test."""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bench import steal
from bench.results import ScenarioResult

T = TypeVar("T")

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Context:
    """What a scenario needs from the run: the size switch, where its logs go, and whether it
    runs its cluster variant (`--cluster`: Yoi on a private Redis Cluster)."""

    quick: bool
    log_dir: Path
    cluster: bool = False

    def pick(self, full: T, quick: T) -> T:
        return quick if self.quick else full


Scenario = Callable[[Context, ScenarioResult], None]


@contextmanager
def recorded(result: ScenarioResult, what: str) -> Iterator[None]:
    """Run one side of a scenario; an exception becomes an error entry instead of ending the
    scenario, so the ceilings measured around it are still reported. The CPU steal during it
    is kept beside its numbers (`bench.steal`)."""
    stolen = steal.meter()
    try:
        yield
    except Exception as exc:
        result.errors.append(f"{what}: {type(exc).__name__}: {exc}")
        result.tracebacks.append(traceback.format_exc())
    finally:
        pct = stolen()
        if pct is not None:
            result.steal_pct[what] = pct


def run_one(
    name: str, scenario: Scenario, quick: bool, log_root: Path, *, cluster: bool = False
) -> ScenarioResult:
    name = f"{name}-cluster" if cluster else name
    result = ScenarioResult(name)
    context = Context(quick=quick, log_dir=log_root / name, cluster=cluster)
    context.log_dir.mkdir(parents=True, exist_ok=True)
    result.loadavg_1m_at_start = round(os.getloadavg()[0], 2)  # how busy others kept the cores
    started = time.monotonic()
    with recorded(result, "scenario"):
        scenario(context, result)
    result.duration_s = time.monotonic() - started
    if result.tracebacks:
        (context.log_dir / "tracebacks.txt").write_text("\n".join(result.tracebacks))
    return result


def write_json(path: Path, results: list[ScenarioResult], env: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"scenarios": {r.name: r.to_json() for r in results}, "env": env}
    path.write_text(json.dumps(document, indent=2) + "\n")
