"""Run the LangGraph Agent Server in-memory on 127.0.0.1:PORT serving the echo graph.

`python bench/peers/agent_server.py PORT` with the Agent Server venv's interpreter (never the
project's venv: its dependency pins stay apart). No tracing, no license key, no browser, so it
makes no network call; the in-memory runtime keeps threads and runs in the process.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

GRAPH = Path(__file__).resolve().parent / "agent_server_graph.py"


def main() -> None:
    port = int(sys.argv[1])
    for name in ("LANGSMITH_API_KEY", "LANGCHAIN_API_KEY", "LANGGRAPH_CLOUD_LICENSE_KEY"):
        os.environ.pop(name, None)
    os.environ["LANGSMITH_TRACING"] = "false"
    os.environ["LANGCHAIN_TRACING_V2"] = "false"
    from langgraph_api.cli import run_server

    run_server(
        host="127.0.0.1",
        port=port,
        reload=False,
        graphs={"echo": f"{GRAPH}:graph"},
        open_browser=False,
        disable_persistence=True,
        server_level="WARNING",
    )


if __name__ == "__main__":
    main()
