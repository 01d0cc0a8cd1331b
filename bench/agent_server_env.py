"""The LangGraph Agent Server's own venv under the bench cache, so its pins never touch ours."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

from bench.llama_build import cache_root

PACKAGES = ("langgraph-api==0.16.7", "langgraph-runtime-inmem==0.36.7")


def agent_server_python() -> Path:
    """The venv's interpreter, creating the venv and installing the pinned server first."""
    home = cache_root() / "agent-server-venv"
    python = home / "bin" / "python"
    stamp = home / ".installed"
    wanted = " ".join(PACKAGES)
    if not (python.is_file() and stamp.is_file() and stamp.read_text() == wanted):
        print(f"agent-server: installing {wanted} into {home}", file=sys.stderr, flush=True)
        venv.create(home, with_pip=True)
        subprocess.run(
            ["nice", "-n", "19", str(python), "-m", "pip", "install", "--quiet", *PACKAGES],
            check=True,
        )
        stamp.write_text(wanted)
    return python


if __name__ == "__main__":
    print(agent_server_python())
