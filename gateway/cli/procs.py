"""Child processes of `yoi up`: started so they die with their parent, stopped with a deadline.

Every child asks the kernel for SIGTERM when `yoi up` dies (Linux `PR_SET_PDEATHSIG`), so even a
SIGKILLed supervisor leaves no orphan; a normal stop is SIGTERM, a bounded wait, then SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

log = logging.getLogger("yoi.up")
PR_SET_PDEATHSIG = 1
KILL_WAIT_S = 5.0


@dataclass(frozen=True)
class ChildSpec:
    """How to start one child, kept with it so a supervisor can start it again the same way.
    `own_session` keeps it out of the terminal's Ctrl-C (SIGINT to the foreground group): for
    a child that must outlive the others' shutdown, like Redis."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    own_session: bool = False
    stdout: int | None = None


@dataclass
class Child:
    spec: ChildSpec
    process: asyncio.subprocess.Process

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.returncode is None


def _die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` arming PDEATHSIG; libc is loaded here, before the fork, not in the child."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def arm() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the line above: follow it now
            os._exit(1)

    return arm


async def spawn(spec: ChildSpec) -> Child:
    """Start one child from its spec (again, for a restart)."""
    process = await asyncio.create_subprocess_exec(
        *spec.argv,
        env=dict(spec.env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=spec.stdout,
        preexec_fn=_die_with_parent(),
        start_new_session=spec.own_session,
    )
    return Child(spec, process)


async def stop(children: Sequence[Child], *, grace_s: float) -> None:
    """SIGTERM every running child, wait up to `grace_s`, SIGKILL the rest and reap them."""
    running = [child for child in children if child.running]
    for child in running:
        with contextlib.suppress(ProcessLookupError):
            child.process.terminate()
    waits = [asyncio.ensure_future(child.process.wait()) for child in running]
    if not waits:
        return
    _, late = await asyncio.wait(waits, timeout=grace_s)
    for child in running:
        if child.running:
            log.warning("%s did not stop within %gs; killing it", child.name, grace_s)
            with contextlib.suppress(ProcessLookupError):
                child.process.kill()
    if late:
        await asyncio.wait(late, timeout=KILL_WAIT_S)
