"""The scenario registry, in the order a full run goes through them, and those with a cluster
variant (`python -m bench --cluster`: `Context.cluster` is set)."""

from __future__ import annotations

from bench.harness import Scenario
from bench.scenarios import (
    agent_server,
    failover,
    fanout,
    hotpath,
    latency,
    llm,
    overload,
    scale,
    throughput,
    tokens,
)

SCENARIOS: dict[str, Scenario] = {
    "latency": latency.run,
    "throughput": throughput.run,
    "scale": scale.run,
    "fanout": fanout.run,
    "failover": failover.run,
    "tokens": tokens.run,
    "hotpath": hotpath.run,
    "llm": llm.run,
    "agent_server": agent_server.run,
    "overload": overload.run,
}

CLUSTER_SCENARIOS = ("throughput", "failover")

__all__ = ["CLUSTER_SCENARIOS", "SCENARIOS"]
