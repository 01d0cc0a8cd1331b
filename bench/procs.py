"""Child processes with deadlines: every process a scenario starts is stopped on the way out."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

STOP_GRACE_S = 5.0
KILL_WAIT_S = 3.0


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1; racy in theory, fine on one machine."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ManagedProcess:
    """A child in its own session with its output in a log file; `stop()` is idempotent and
    escalates from SIGTERM to SIGKILL after a grace period so a run never leaks processes."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_dir / f"{name}.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        child_env = dict(os.environ)
        child_env.update(env or {})
        child_env.setdefault("PYTHONUNBUFFERED", "1")
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=child_env,
            cwd=cwd,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        """SIGKILL with no grace: what the failover scenario does to a runtime process."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(timeout=KILL_WAIT_S)

    def stop(self, grace_s: float = STOP_GRACE_S) -> int | None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                try:
                    self.popen.wait(timeout=KILL_WAIT_S)
                except subprocess.TimeoutExpired:
                    print(f"bench: {self.name} (pid {self.pid}) survived SIGKILL", file=sys.stderr)
        if not self._log.closed:
            self._log.close()
        return self.popen.returncode

    def log_tail(self, lines: int = 2) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def python_module(module: str, *args: str) -> list[str]:
    """argv running `module` with this interpreter, so children use the project venv."""
    return [sys.executable, "-m", module, *args]


def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, proc: ManagedProcess | None = None
) -> None:
    """Poll with backoff until `condition()`; raise naming `what` (and the log tail of `proc`,
    or its exit) on timeout, so a scenario can report why its system never came up."""
    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while True:
        if condition():
            return
        if proc is not None and not proc.alive():
            raise RuntimeError(
                f"{what}: {proc.name} exited {proc.popen.returncode}: {proc.log_tail()}"
            )
        if time.monotonic() > deadline:
            tail = f": {proc.log_tail()}" if proc is not None else ""
            raise TimeoutError(f"{what} (waited {timeout_s:.0f} s){tail}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def http_ok(url: str) -> Callable[[], bool]:
    """A readiness probe: the URL answers 2xx."""

    def probe() -> bool:
        try:
            return httpx.get(url, timeout=1.0).is_success
        except httpx.HTTPError:
            return False

    return probe


def rss_bytes(pid: int) -> int:
    """Resident set size of `pid` from /proc (VmRSS), 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` so far (from /proc/PID/stat), to show who used the cores."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")
