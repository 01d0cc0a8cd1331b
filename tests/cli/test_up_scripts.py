"""What a person copies from `yoi up` and what a script reads from `yoi`: the `export` lines,
the README's `redis-cli` line run as written, `--version`, `--json` on every read command, and
terminal control characters in a message printed as visible escapes, never executed."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.support import Stack, clean_env, yoi, yoi_up
from tests.helpers import free_port

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
RETITLE = "\x1b]0;owned\x07"  # OSC 0: retitles the terminal
CSI_8BIT = "\x9b2J"  # an 8-bit CSI: clears the screen on some terminals


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """`yoi up` with every default (the namespace the README names) on its private Redis."""
    with yoi_up("--port", str(free_port()), env=clean_env(), expected_processes=2) as running:
        running.out.wait_for(r"^Ready\.")  # the lines after "Console:" are in `seen` now
        yield running


def exported(stack: Stack) -> dict[str, str]:
    found = (re.match(r"^export (YOI_\w+)=(\S+)$", line) for line in stack.out.seen)
    return {match.group(1): match.group(2) for match in found if match}


def created(stack: Stack, name: str) -> str:
    done = stack.yoi("create", "fleet", name, "--json")
    assert done.returncode == 0, done.stderr
    worker = json.loads(done.stdout)
    assert (worker["display_name"], worker["runtime_id"]) == (name, "fleet")
    return f"fleet/{worker['worker_id']}"


def test_up_prints_the_variables_to_export(stack: Stack) -> None:
    variables = exported(stack)
    assert variables["YOI_GATEWAY"] == stack.gateway
    assert variables["YOI_REDIS_URL"] == f"redis://127.0.0.1:{stack.redis_port}/0"


def test_the_readme_redis_cli_line_works_as_written(stack: Stack) -> None:
    ref = created(stack, "readme")
    sent = stack.yoi("send", ref, "hello redis-cli")
    assert sent.returncode == 0, sent.stderr
    line = next(line for line in README.read_text().splitlines() if line.startswith("redis-cli "))
    command = line.replace("<worker_id>", ref.split("/")[1])
    shell = "".join(f"export {k}={v}\n" for k, v in exported(stack).items()) + command
    done = subprocess.run(
        ["bash", "-c", shell], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert '"user_message"' in done.stdout and "hello redis-cli" in done.stdout


def test_version() -> None:
    done = yoi("--version", env=clean_env())
    assert done.returncode == 0
    assert re.fullmatch(r"yoi \d+\.\d+\.\d+\S*\n", done.stdout)


def test_json_on_every_read_command(stack: Stack) -> None:
    ref = created(stack, "scripted")
    sent = stack.yoi("send", ref, "one two", "--json")
    assert sent.returncode == 0, sent.stderr
    events = [json.loads(line) for line in sent.stdout.splitlines()]
    assert events[-1]["type"] == "run_finished" and events[-1]["result"] == "finished"
    assert "".join(e["text"] for e in events if e["type"] == "text_delta") == "You said: one two"

    runtimes = json.loads(stack.yoi("runtimes", "--json").stdout)["runtimes"]
    assert {r["runtime_id"] for r in runtimes} == {"backend-internal", "fleet"}
    listing = json.loads(stack.yoi("workers", "--json").stdout)
    assert ref.split("/")[1] in {w["worker_id"] for w in listing["workers"]}
    assert listing["unavailable"] == []
    only_fleet = json.loads(stack.yoi("workers", "fleet", "--json").stdout)["workers"]
    assert {w["runtime_id"] for w in only_fleet} == {"fleet"}

    page = json.loads(stack.yoi("transcript", ref, "--json").stdout)
    assert [e["role"] for e in page["entries"]] == ["user", "assistant"]
    tail = [json.loads(line) for line in stack.yoi("tail", ref, "--json").stdout.splitlines()]
    assert [e["cursor"] for e in tail if e["type"] == "run_finished"] == [events[-1]["cursor"]]
    redis_url = exported(stack)["YOI_REDIS_URL"]
    direct = stack.yoi(
        "tail", ref.split("/")[1], "--runtime-id", "fleet", "--redis-url", redis_url, "--json"
    )
    assert [json.loads(line) for line in direct.stdout.splitlines()] == tail
    cancelled = json.loads(stack.yoi("cancel", ref, "--json").stdout)
    assert cancelled["cancelled"] is False and cancelled["state"] == "idle"


def test_control_characters_are_printed_escaped_everywhere(stack: Stack) -> None:
    ref = created(stack, "mallory")
    text = f"hi{RETITLE}{CSI_8BIT}"
    outputs = [stack.yoi("send", ref, text)]
    outputs += [stack.yoi(*command) for command in (["tail", ref], ["transcript", ref])]
    outputs.append(stack.yoi("send", ref, "x", "--json"))
    for done in outputs:
        assert done.returncode == 0, done.stderr
        for raw in ("\x1b", "\x07", "\x9b"):
            assert raw not in done.stdout + done.stderr, done.args
    assert outputs[0].stdout == "You said: hi\\x1b]0;owned\\x07\\x9b2J\n"
    assert "\\x1b]0;owned\\x07" in outputs[2].stdout  # the transcript shows what was sent
