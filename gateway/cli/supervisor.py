"""`yoi up`: the whole system on one machine, supervised.

Starts Redis (a private one unless a URL is configured, persistent in the data directory), the
gateway with the fleet runtime, and N runtime processes; waits until the gateway is ready;
prints the console address. A runtime process that dies is started again after a backoff (its
Workers move to the others meanwhile, as in any fleet). One that dies more often than its
restart budget allows, the gateway dying, or the private Redis dying stops everything. A
signal (SIGINT from Ctrl-C or `kill -INT`, SIGTERM, SIGHUP) stops every child with a deadline.
Redis stops last, so members can hand their Workers back while it is still there.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
import sys
import time
from typing import Any

import typer

from gateway.auth import is_loopback
from gateway.cli.data_dir import DataDir
from gateway.cli.errors import FAILED, OK, UNREACHABLE, CliFailure
from gateway.cli.private_redis import PrivateRedis, answers, find_binary, start_private, where
from gateway.cli.procs import Child, ChildSpec, spawn, stop
from gateway.cli.restarts import RestartBudget
from gateway.client import AsyncClient, ConnectionFailed, RuntimeUnavailable
from shared.settings import Settings

log = logging.getLogger("yoi.up")  # stdout carries the lines for people; stderr the log

READY_TIMEOUT_S = 60.0
STOP_MARGIN_S = 5.0  # on top of the members' drain grace
CHILD_ARGV = [sys.executable, "-m", "gateway.cli"]
GATEWAY = 0  # index of the gateway in `Supervisor.children`; runtime processes follow
REDIS = -1  # what `_next_death` answers for the private redis-server


def console_url(host: str, port: int) -> str:
    """The address a person opens: a wildcard bind is reached through loopback."""
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
    return f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"


class Supervisor:
    def __init__(self, settings: Settings, processes: int, data: DataDir) -> None:
        self.settings = settings
        self.processes = processes
        self.data = data
        self.children: list[Child] = []
        self.budgets = [
            RestartBudget(settings.restart_limit, settings.restart_window_s)
            for _ in range(processes)
        ]
        self.redis: PrivateRedis | None = None
        self.stop_requested = asyncio.Event()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, self.stop_requested.set)
        try:
            return await self._run()
        finally:
            started = bool(self.children) or self.redis is not None
            await stop(self.children, grace_s=self.settings.drain_grace_s + STOP_MARGIN_S)
            if self.redis is not None:
                await self.redis.aclose()
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            if started:
                log.info("stopped")

    async def _run(self) -> int:
        env = dict(os.environ)
        env["YOI_DATA_DIR"] = str(self.data.path)  # the gateway keeps its embedded Workers here
        env["YOI_REDIS_URL"] = await self._redis_url(env)
        token = self._token()
        if token is not None:
            env["YOI_API_TOKEN"] = token  # children read it from the environment, never argv
        env["PYTHONUNBUFFERED"] = "1"
        # One log configuration for the whole tree (`--log-level` given to yoi up included).
        env["YOI_LOG_LEVEL"] = self.settings.log_level
        env["YOI_LOG_FORMAT"] = self.settings.log_format
        await self._start_children(env)
        url = console_url(self.settings.host, self.settings.port)
        ready = asyncio.ensure_future(_wait_ready(url, token))
        try:
            outcome = await self._supervise(ready)
        finally:
            ready.cancel()
        if outcome is not None:
            return outcome
        typer.echo(f"Console: {url}")
        # What to paste into another shell: `yoi` reads YOI_GATEWAY, and the README's
        # `redis-cli -u "$YOI_REDIS_URL" …` line reads the private Redis (which has no password).
        typer.echo(f"export YOI_GATEWAY={url.rstrip('/')}")
        if self.redis is not None:
            typer.echo(f"export YOI_REDIS_URL={self.redis.url}")
        if token is not None:
            typer.echo(
                f"API token: {token}  (send it as `Authorization: Bearer <token>`; "
                "the CLI reads YOI_API_TOKEN)"
            )
        typer.echo("Ready. Ctrl-C stops everything.")
        return await self._supervise(None) or OK

    async def _redis_url(self, env: dict[str, str]) -> str:
        if self.data.ephemeral:
            typer.echo(f"Data: {self.data.path} (ephemeral: deleted when yoi up stops)")
        else:
            typer.echo(f"Data: {self.data.path}")
        if self.settings.redis_url is not None:
            if not await answers(self.settings.redis_url):
                raise CliFailure(
                    f"cannot reach Redis at {where(self.settings.redis_url)} (from --redis-url, "
                    "YOI_REDIS_URL or REDIS_URL); unset them to let yoi up start its own",
                    UNREACHABLE,
                )
            typer.echo(f"Redis: {where(self.settings.redis_url)} (configured)")
            return self.settings.redis_url
        binary, origin = find_binary()
        self.redis = await start_private(
            binary, env, self.data.redis_dir, persist=not self.data.ephemeral
        )
        typer.echo(f"Redis: private redis-server ({origin}) on 127.0.0.1:{self.redis.port}")
        return self.redis.url

    def _token(self) -> str | None:
        """A fresh token only when the gateway listens beyond loopback and none is configured."""
        if self.settings.api_token is not None or is_loopback(self.settings.host):
            return None
        return secrets.token_urlsafe(24)

    async def _start_children(self, env: dict[str, str]) -> None:
        runtime_id = self.settings.runtime_id
        gateway = [
            *CHILD_ARGV,
            "gateway",
            "--host",
            self.settings.host,
            "--port",
            str(self.settings.port),
            "--fleet",
            runtime_id,
        ]
        member = [*CHILD_ARGV, "runtime", "--runtime-id", runtime_id]
        # Children log to stderr (ours); their stdout (what `yoi gateway` prints for a person,
        # which this supervisor prints itself) is dropped: ours carries only our own lines.
        out = asyncio.subprocess.DEVNULL
        specs = [ChildSpec("the gateway", tuple(gateway), env, stdout=out)]
        specs += [
            ChildSpec(f"runtime process {index}", tuple(member), env, stdout=out)
            for index in range(1, self.processes + 1)
        ]
        for spec in specs:  # each child keeps its spec: `spawn(child.spec)` starts it again
            self.children.append(await spawn(spec))
        typer.echo(
            f"Gateway: {self.settings.host}:{self.settings.port}, fleet runtime {runtime_id!r} "
            f"with {self.processes} runtime process(es)"
        )

    async def _supervise(self, ready: asyncio.Future[int | None] | None) -> int | None:
        """Restart runtime processes that die until a stop request (OK), the gateway's death or
        a spent restart budget (FAILED), or `ready`'s result (None = ready, go on)."""
        while True:
            died = await self._next_death(ready)
            if self.stop_requested.is_set():
                return OK
            if died is None:
                assert ready is not None
                return ready.result()
            if died in (GATEWAY, REDIS):
                child = self.children[GATEWAY] if died == GATEWAY else self._redis_child()
                log.error(
                    "%s (pid %d) exited unexpectedly with code %s; stopping everything",
                    child.name,
                    child.pid,
                    child.process.returncode,
                )
                return FAILED
            if not await self._restart(died):
                return FAILED

    async def _next_death(self, ready: asyncio.Future[int | None] | None) -> int | None:
        """Index of the first child to exit; None on a stop request or when `ready` is done."""
        waits: dict[asyncio.Future[Any], int | None] = {
            asyncio.ensure_future(child.process.wait()): index
            for index, child in enumerate(self.children)
        }
        waits[asyncio.ensure_future(self.stop_requested.wait())] = None
        if self.redis is not None:
            waits[asyncio.ensure_future(self.redis.child.process.wait())] = REDIS
        try:
            pending: set[asyncio.Future[Any]] = set(waits)
            if ready is not None:
                pending.add(ready)
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in waits:
                future.cancel()
            await asyncio.gather(*waits, return_exceptions=True)  # reap what was cancelled
        deaths = [waits[future] for future in done if waits.get(future) is not None]
        return min((index for index in deaths if index is not None), default=None)

    def _redis_child(self) -> Child:
        assert self.redis is not None
        return self.redis.child

    async def _restart(self, index: int) -> bool:
        """Start runtime process `index` again after its backoff; False when its budget is
        spent (everything stops). A stop request during the backoff starts nothing."""
        child = self.children[index]
        code = child.process.returncode
        delay = self.budgets[index - 1].next_delay()
        if delay is None:
            log.error(
                "%s (pid %d) exited with code %s, its %d restart(s) within %gs are spent; "
                "stopping everything",
                child.name,
                child.pid,
                code,
                self.settings.restart_limit,
                self.settings.restart_window_s,
            )
            return False
        log.warning(
            "%s (pid %d) exited with code %s; restarting it in %gs (restart %d of %d within %gs)",
            child.name,
            child.pid,
            code,
            delay,
            self.budgets[index - 1].recent(),
            self.settings.restart_limit,
            self.settings.restart_window_s,
        )
        # The backoff ends early on a stop request or the gateway's death: `_supervise` sees it.
        interrupts = [
            asyncio.ensure_future(self.stop_requested.wait()),
            asyncio.ensure_future(self.children[GATEWAY].process.wait()),
        ]
        try:
            done, _ = await asyncio.wait(
                interrupts, timeout=delay, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for future in interrupts:
                future.cancel()
            await asyncio.gather(*interrupts, return_exceptions=True)
        if done:
            return True
        self.children[index] = await spawn(child.spec)
        log.info("%s restarted (pid %d)", child.name, self.children[index].pid)
        return True


def _check_port(host: str, port: int) -> None:
    """Fail before starting anything when the gateway's port is taken (a second `yoi up`?)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise CliFailure(
                f"cannot listen on {host}:{port} ({exc.strerror}); is another `yoi up` "
                "running? Choose another --port"
            ) from None


async def _wait_ready(url: str, token: str | None) -> int | None:
    """None once `/readyz` answers 200; FAILED (with a message) at the deadline."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    delay = 0.02
    probe = AsyncClient(url, token or "", timeout_s=2.0, retries=0, retry_wait_s=0)
    async with probe as client:
        while time.monotonic() < deadline:
            try:
                await client.ready()
                return None
            except (ConnectionFailed, RuntimeUnavailable):
                pass  # not listening yet, or its runtimes not ready yet
            await asyncio.sleep(delay)  # backoff between readiness probes
            delay = min(delay * 2, 0.25)
    log.error("the gateway was not ready within %gs; stopping", READY_TIMEOUT_S)
    return FAILED


def up(settings: Settings, processes: int) -> int:
    with DataDir.open(settings.data_dir) as data:  # refuses a data dir another yoi up holds
        _check_port(settings.host, settings.port)
        return asyncio.run(Supervisor(settings, processes, data).run())
