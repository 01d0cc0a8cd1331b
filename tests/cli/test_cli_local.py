"""`yoi` without a running system: exit codes a script can branch on, and `yoi chat` offline."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.cli.support import YOI, Stream, clean_env, finish, start, wait_ready, yoi
from tests.helpers import free_port

pytestmark = pytest.mark.slow


def test_gateway_down_exits_3_whichever_side_the_option_is_on() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for args in (["--gateway", url, "runtimes"], ["workers", f"--gateway={url}"]):
        done = yoi(*args, env=clean_env())
        assert done.returncode == 3, done.stderr
        assert done.stderr == f"yoi: cannot reach the gateway at {url} — is `yoi up` running?\n"


def test_gateway_from_the_environment() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = yoi("send", "companion@backend-internal", "hi", env=clean_env(YOI_GATEWAY=url))
    assert done.returncode == 3
    assert url in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["send", "not-a-ref", "hi"],
        ["--gateway", "localhost:8000", "runtimes"],
        ["tail", "fleet/x", "--namespace", "ns"],
        ["send", "a@fleet", "hi", "--strategy", "sometimes"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    done = yoi(*args, env=clean_env())
    assert done.returncode == 2, (args, done.stderr)
    assert done.stdout == ""


def test_help_documents_the_exit_codes() -> None:
    done = yoi("--help", env=clean_env())
    assert done.returncode == 0
    for line in (
        "3  the gateway cannot be reached",
        "5  the worker is busy answering",
        "6  missing or wrong API token",
    ):
        assert line in done.stdout


def test_chat_through_a_pipe_answers_each_line() -> None:
    done = yoi("chat", env=clean_env(), stdin="hello there\n\nsecond line\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("you> ") == [
        "",
        "You said: hello there\n",
        "",
        "You said: second line\n",
        "",
    ]


def test_chat_with_an_unknown_profile_says_so() -> None:
    done = yoi("chat", "--profile", "no-such-profile", env=clean_env(), stdin="hi\n")
    assert done.returncode == 1
    assert "unknown profile 'no-such-profile'" in done.stderr


def test_gateway_alone_serves_the_embedded_runtime() -> None:
    """`yoi gateway` with no Redis configured: ready, with `backend-internal` only."""
    port = free_port()
    proc = start("gateway", "--port", str(port), env=clean_env())
    try:
        gateway = f"http://127.0.0.1:{port}"
        wait_ready(gateway, timeout_s=30)
        listing = yoi("runtimes", env=clean_env(YOI_GATEWAY=gateway))
        assert listing.returncode == 0, listing.stderr
        assert [row.split()[0] for row in listing.stdout.splitlines()[1:]] == ["backend-internal"]
        # Several names: one batch create, a line each in order; a bad name creates none.
        env = clean_env(YOI_GATEWAY=gateway)
        made = yoi("create", "backend-internal", "b1", "b2", "b3", env=env)
        assert made.returncode == 0, made.stderr
        assert [line.split()[2] for line in made.stdout.splitlines()] == [
            f"(b{n}@backend-internal," for n in (1, 2, 3)
        ]
        refused = yoi("create", "backend-internal", "b4", "not a name", env=env)
        assert refused.returncode == 2 and refused.stdout == ""
        workers = yoi("workers", "backend-internal", env=env).stdout
        assert "b3@backend-internal" in workers and "b4@" not in workers
    finally:
        code = finish(proc, signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal it caught: exit status -15
    assert code in (0, -signal.SIGTERM)
    assert proc.stderr is not None
    assert "Application shutdown complete" in proc.stderr.read()
    assert proc.stdout is not None  # the suite runs with YOI_DATA_DIR= (empty)
    assert proc.stdout.readline() == (
        "embedded Workers: in memory only (gone when the gateway stops)\n"
    )


def test_gateway_prints_its_data_dir(tmp_path: Path) -> None:
    port = free_port()
    proc = start("gateway", "--port", str(port), "--data-dir", str(tmp_path), env=clean_env())
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == f"embedded Workers: kept in {tmp_path}\n"
        wait_ready(f"http://127.0.0.1:{port}", timeout_s=30)
    finally:
        finish(proc, signal.SIGTERM)


def test_runtime_without_redis_is_a_usage_error() -> None:
    done = yoi("runtime", "--runtime-id", "fleet", env=clean_env())
    assert done.returncode == 2
    assert "needs Redis" in done.stderr


def test_up_refuses_a_port_in_use_before_starting_anything() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = yoi("up", "--port", str(port), env=clean_env())
    assert done.returncode == 1
    assert done.stdout == ""  # no Redis, no gateway were started
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_chat_ctrl_c_cancels_an_answer_then_leaves_at_the_prompt() -> None:
    proc = subprocess.Popen(
        [*YOI, "chat"],
        env=clean_env(YOI_ECHO_DELAY_MS="200"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out, err = Stream(proc.stdout.fileno()), Stream(proc.stderr.fileno())
    try:
        at = out.wait_for("you> ")
        proc.stdin.write(b" ".join(b"word%d" % i for i in range(40)) + b"\n")
        proc.stdin.flush()
        at = out.wait_for("word1 ", start=at)  # the answer is streaming
        proc.send_signal(signal.SIGINT)
        err.wait_for("[cancelled]")
        out.wait_for("you> ", start=at)  # back at the prompt, still running
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)  # at the prompt: leave, as Ctrl-C does (130)
        assert proc.wait(timeout=20) == 130
    finally:
        finish(proc)  # type: ignore[arg-type]
    assert "word39" not in out.text


def test_up_with_an_unreachable_redis_says_so() -> None:
    url = f"redis://user:hunter2@127.0.0.1:{free_port()}/0"  # nothing listens there
    done = yoi("up", "--port", str(free_port()), "--redis-url", url, env=clean_env())
    assert done.returncode == 3
    assert f"cannot reach Redis at 127.0.0.1:{url.rsplit(':', 1)[1]}" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout  # the URL's password is never printed
