"""Driving `yoi` as real processes: run a command, read output lines with deadlines, find the
process tree of `yoi up` in /proc and prove every member of it is gone afterwards."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.fake_openai_server import FakeOpenAIServer
from tests.helpers import wait_until_sync
from tests.redis_server import RedisServer

YOI = [sys.executable, "-m", "gateway.cli"]
COMMAND_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
# Variables of the developer's shell that would change what a test's processes do.
SCRUBBED = (
    "REDIS_URL",
    "YOI_REDIS_URL",
    "YOI_API_TOKEN",
    "YOI_GATEWAY",
    "YOI_FLEETS",
    "YOI_HOST",
    "YOI_PORT",
    "YOI_PROCESSES",
    "YOI_ECHO_DELAY_MS",
)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def yoi(
    *args: str,
    env: Mapping[str, str],
    stdin: str | None = None,
    timeout_s: float = COMMAND_TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """Run one `yoi` command to completion (killed at the deadline)."""
    return subprocess.run(
        [*YOI, *args],
        env=dict(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


class Lines:
    """A pipe read on a thread into a queue, so a test can wait for a line with a deadline."""

    def __init__(self, pipe: object) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(pipe,), daemon=True)
        self._thread.start()

    def _pump(self, pipe: object) -> None:
        for line in pipe:  # type: ignore[attr-defined]
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout_s: float = 30.0) -> re.Match[str]:
        """The first new line matching `pattern`; fails at the deadline or end of output."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no line matching {pattern!r} within {timeout_s}s: {self.seen}"
                )
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"output ended before {pattern!r}: {self.seen}")
            self.seen.append(line)
            if found := regex.search(line):
                return found

    def rest(self, timeout_s: float = 10.0) -> list[str]:
        """Every remaining line, once the pipe is closed."""
        self._thread.join(timeout_s)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return self.seen
            if line is not None:
                self.seen.append(line)


def start(*args: str, env: Mapping[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*YOI, *args],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> int:
    """Stop a process we started: signal, wait with a deadline, kill as the last resort."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)
    return proc.returncode


# -- the process tree -----------------------------------------------------------------------------

ProcId = tuple[int, int]  # (pid, start time in clock ticks): a pid reused later is not a match


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, starttime) of a process, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), int(fields[19])


def descendants(root: int) -> set[ProcId]:
    """Every live process below `root`, found by walking ppid links in /proc."""
    children: dict[int, list[ProcId]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            children.setdefault(stat[1], []).append((int(entry), stat[2]))
    found: set[ProcId] = set()
    todo = [root]
    while todo:
        for proc_id in children.get(todo.pop(), []):
            found.add(proc_id)
            todo.append(proc_id[0])
    return found


def alive(proc_id: ProcId) -> bool:
    stat = _stat(proc_id[0])
    return stat is not None and stat[2] == proc_id[1] and stat[0] != "Z"


def assert_all_gone(proc_ids: set[ProcId], timeout_s: float = 15.0) -> None:
    wait_until_sync(
        lambda: not any(alive(p) for p in proc_ids),
        timeout_s=timeout_s,
        what=f"processes {sorted(p[0] for p in proc_ids if alive(p))} to exit",
    )


# -- a running `yoi up` ---------------------------------------------------------------------------


@dataclass
class Stack:
    proc: subprocess.Popen[str]
    out: Lines
    err: Lines
    env: dict[str, str]
    gateway: str
    redis_port: int | None = None
    tree: set[ProcId] = field(default_factory=set)

    @property
    def client_env(self) -> dict[str, str]:
        """What a person's shell would have: the gateway's address, no token unless given."""
        env = {k: v for k, v in self.env.items() if k != "YOI_API_TOKEN"}
        return {**env, "YOI_GATEWAY": self.gateway}

    def yoi(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return yoi(*args, env=self.client_env, stdin=stdin)

    def stop(self, sig: int, *, whole_group: bool = False) -> int:
        """Signal `yoi up` (or, as a terminal's Ctrl-C does, its whole process group), then
        prove its whole tree is gone; returns its exit code."""
        if whole_group:
            os.killpg(self.proc.pid, sig)
        code = finish(self.proc, sig)
        assert_all_gone(self.tree)
        return code


def wait_ready(gateway: str, timeout_s: float = 60.0) -> None:
    def ready() -> bool:
        try:
            return httpx.get(f"{gateway}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until_sync(ready, timeout_s=timeout_s, what=f"{gateway}/readyz")


@contextmanager
def yoi_up(*args: str, env: dict[str, str], expected_processes: int) -> Iterator[Stack]:
    """`yoi up` as a child of the test, ready; whatever happens, its tree is gone afterwards."""
    proc = subprocess.Popen(
        [*YOI, "up", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a shell job: see Stack.stop
    )
    stack = Stack(proc, Lines(proc.stdout), Lines(proc.stderr), env, gateway="")
    try:
        console = stack.out.wait_for(r"^Console: (http://\S+)/$", timeout_s=60)
        stack.gateway = console.group(1)
        redis_line = next((line for line in stack.out.seen if line.startswith("Redis:")), "")
        if port := re.search(r"private redis-server .* on 127\.0\.0\.1:(\d+)$", redis_line):
            stack.redis_port = int(port.group(1))
        # gateway + runtime processes (+ the private redis-server): all spawned before "Console:"
        expected = expected_processes + 1 + (stack.redis_port is not None)
        stack.tree = descendants(proc.pid)
        assert len(stack.tree) >= expected, (stack.tree, expected)
        yield stack
    finally:
        stack.tree |= descendants(proc.pid) if proc.poll() is None else set()
        finish(proc, signal.SIGTERM)
        assert_all_gone(stack.tree)


def when(condition: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    wait_until_sync(condition, timeout_s=timeout_s, what=what)


def _read_or_eof(fd: int) -> bytes:
    """`os.read`, with the EIO a pty's master answers once the child closed its side as EOF."""
    try:
        return os.read(fd, 4096)
    except OSError:
        return b""


class Stream:
    """Raw output read on a thread, for prompts that end without a newline."""

    def __init__(self, fd: int) -> None:
        self.text = ""
        self._changed = threading.Condition()
        self._closed = False
        threading.Thread(target=self._pump, args=(fd,), daemon=True).start()

    def _pump(self, fd: int) -> None:
        while chunk := _read_or_eof(fd):
            with self._changed:
                self.text += chunk.decode(errors="replace")
                self._changed.notify_all()
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def wait_for(self, needle: str, *, start: int = 0, timeout_s: float = 20.0) -> int:
        """The offset just past the first `needle` at or after `start`."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: needle in self.text[start:] or self._closed, timeout=timeout_s
            )
            if not found or needle not in self.text[start:]:
                raise AssertionError(f"no {needle!r} after offset {start}: {self.text!r}")
            return self.text.index(needle, start) + len(needle)


# -- helpers of the log tests ---------------------------------------------------------------------


@contextmanager
def redis_with_user(user: str, password: str) -> Iterator[int]:
    """A private redis-server (never the shared one) with an ACL user, for a URL that carries a
    password; yields its port."""
    server = RedisServer(Path(tempfile.mkdtemp(prefix="yoi-redis-")), user=(user, password))
    try:
        server.start()
        yield server.port
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


@contextmanager
def provider_in_a_thread() -> Iterator[FakeOpenAIServer]:
    """The fake chat-completions server on its own event loop, for processes to call."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-openai", daemon=True)
    thread.start()
    server = FakeOpenAIServer()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=10)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
