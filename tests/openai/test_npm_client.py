"""The official `openai` npm client (tests/js, pinned by its package-lock.json) against a real
gateway process on the embedded and the fleet runtime: three calls of one conversation (plain,
streaming with usage, plain with the history resent), the model list, and typed errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.openai.conftest import TOKEN, Stack
from tests.openai.support import exchanges, transcript, workers

pytestmark = pytest.mark.slow

JS = Path(__file__).resolve().parent.parent / "js"
INSTALL_TIMEOUT_S = 300
RUN_TIMEOUT_S = 120


def node_client() -> Path:
    """tests/js with its `node_modules`, installed from the lock file when missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node is not None and npm is not None, "node and npm are required for this test"
    if not (JS / "node_modules" / "openai" / "package.json").is_file():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=JS,
            check=True,
            timeout=INSTALL_TIMEOUT_S,
            capture_output=True,
        )
    return JS / "chat.mjs"


def run_node(stack: Stack, model: str, conversation: str) -> dict[str, Any]:
    script = node_client()
    env = {
        **os.environ,
        "YOI_BASE_URL": stack.v1,
        "YOI_TOKEN": TOKEN,
        "YOI_MODEL": model,
        "YOI_CONVERSATION": conversation,
    }
    done = subprocess.run(
        ["node", str(script)],
        cwd=JS,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr + stack.output()
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def openai_shaped(failure: dict[str, Any], status: int, code: str) -> None:
    assert failure is not None and failure["status"] == status, failure
    assert set(failure["error"]) == {"message", "type", "param", "code"}, failure
    assert failure["error"]["code"] == code, failure


def test_the_npm_client_continues_a_conversation(stack: Stack) -> None:
    result = run_node(stack, "assistant", "npm-user")
    calls = result["calls"]
    texts = [call["text"] for call in calls]
    for asked, call in zip(("js call one", "js call two", "js call three"), calls, strict=True):
        assert asked in call["text"] and call["finish"] == "stop"
        usage = call["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert calls[1]["chunks"] > 3  # role, several deltas, finish, usage

    (worker,) = workers(stack)
    ref = f"{stack.runtime_id}/{worker['worker_id']}"
    assert exchanges(transcript(stack, ref)) == [
        ("user", "js call one"),
        ("assistant", texts[0]),
        ("user", "js call two"),
        ("assistant", texts[1]),
        ("user", "js call three"),
        ("assistant", texts[2]),
    ]
    assert {"assistant", "companion", ref} <= set(result["models"])
    openai_shaped(result["badToken"], 401, "invalid_api_key")
    openai_shaped(result["unknownModel"], 404, "model_not_found")
    openai_shaped(result["invalidBody"], 400, "invalid_input")
    assert result["badToken"]["name"] == "AuthenticationError"
    assert result["unknownModel"]["name"] == "NotFoundError"
    assert result["invalidBody"]["name"] == "BadRequestError"
