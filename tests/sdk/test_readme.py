"""The README's SDK example, run as written against a real gateway (token and address from the
environment, as it says)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sdk.conftest import TOKEN, Gateway

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_example_runs(gateway: Gateway) -> None:
    section = README.read_text().split("## The Python SDK", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "the SDK section has an example"
    env = {**gateway.env, "YOI_GATEWAY": gateway.url, "YOI_API_TOKEN": TOKEN}
    done = subprocess.run(
        [sys.executable, "-c", found.group(1)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    *types, answer, busy = done.stdout.splitlines()
    assert types[0] == "user_message" and types[1] == "run_started"
    assert "text_done" in types and types[-1] == "run_finished"
    assert "hello" in answer
    assert busy == "worker_busy True"  # the long question keeps bob busy (echo: 20 ms a word)
