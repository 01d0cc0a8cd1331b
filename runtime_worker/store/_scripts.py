"""The Lua scripts of RedisStore and the one place their replies and Redis errors become ours.

Scripts live in `lua/*.lua` (read with importlib.resources), each prefixed by `_prelude.lua`,
and run by EVALSHA through redis-py's script cache. Every script answers a table whose first
item is `ok` or an error code; `check` maps codes to typed errors.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, fields
from importlib import resources
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from redis import exceptions as rex
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from shared.errors import (
    InputIdConflict,
    InvalidInput,
    LeaseLost,
    RuntimeUnavailable,
    WorkerBusy,
    WorkerNotFound,
    WorkerStopped,
)

P = ParamSpec("P")
T = TypeVar("T")

# Answers of a server that cannot take writes now: retry later, as with a lost connection.
_UNAVAILABLE_PREFIXES = (
    "OOM",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "TRYAGAIN",
    "NOREPLICAS",
    "LOADING",
    "BUSY ",  # another script runs too long; not BUSYGROUP
)
TRANSPORT_ERRORS = (rex.ConnectionError, rex.TimeoutError, ConnectionError, TimeoutError)


@dataclass(frozen=True)
class Scripts:
    create: AsyncScript
    submit: AsyncScript
    cancel: AsyncScript
    stop: AsyncScript
    acquire: AsyncScript
    renew: AsyncScript
    release: AsyncScript
    take_run: AsyncScript
    append: AsyncScript
    finish_run: AsyncScript
    read_events: AsyncScript
    claim_scope: AsyncScript

    @classmethod
    def register(cls, client: Redis) -> Scripts:
        return cls(**{name: client.register_script(text) for name, text in _sources().items()})


@functools.cache
def _prelude() -> str:
    return (resources.files("runtime_worker.store") / "lua" / "_prelude.lua").read_text("utf-8")


@functools.cache
def _sources() -> dict[str, str]:
    folder = resources.files("runtime_worker.store") / "lua"
    return {
        f.name: _prelude() + "\n" + (folder / f"{f.name}.lua").read_text(encoding="utf-8")
        for f in fields(Scripts)
    }


@functools.cache
def _names_by_sha() -> dict[str, str]:
    return {
        hashlib.sha1(text.encode("utf-8")).hexdigest(): name  # the id Redis knows it by
        for name, text in _sources().items()
    }


class ScriptError(RuntimeError):
    """A Lua script failed (a bug, not an outage): the message names its file and line."""


_SHA = re.compile(r"\b(?:f_)?([0-9a-f]{40})\b")
_LINE = re.compile(r'(?:user_script|\[string "[^"]*"\]):(\d+)')


def located(exc: rex.ResponseError) -> ScriptError | None:
    """A script's error with `<file>.lua:<line>` in front (the prelude's lines counted apart,
    as every script runs after it); None for an error that is no script's."""
    message = str(exc)
    sha = _SHA.search(message)
    name = _names_by_sha().get(sha.group(1)) if sha else None
    if name is None:
        return None
    where = f"{name}.lua"
    line = _LINE.search(message)
    if line is not None:
        number = int(line.group(1))
        prelude_lines = _prelude().count("\n") + 1
        where = (
            f"_prelude.lua:{number}"
            if number <= prelude_lines
            else f"{name}.lua:{number - prelude_lines}"
        )
    return ScriptError(f"{where}: {message}")


def check(reply: Any, worker_id: str = "") -> list[Any]:
    """A script's reply without its status; a typed error for any code but `ok`."""
    status, *rest = reply
    if status == "ok":
        return list(rest)
    detail = rest[0] if rest else ""
    if status == "worker_not_found":
        raise WorkerNotFound(f"no worker {worker_id}")
    if status == "worker_stopped":
        raise WorkerStopped(f"worker {worker_id} is {detail}")
    if status == "worker_busy":
        raise WorkerBusy(f"worker {worker_id} is busy")
    if status == "lease_lost":
        raise LeaseLost(f"worker {worker_id} is at epoch {detail} now")
    if status == "input_id_conflict":
        raise InputIdConflict(f"input {detail} was sent before with another text")
    if status == "worker_exists":
        raise InvalidInput(f"worker {worker_id} exists already")
    if status == "unknown_profile":
        raise InvalidInput(f"unknown profile {detail!r}")
    raise RuntimeError(f"unexpected script reply {status!r} for worker {worker_id}")


class _HasRuntime(Protocol):
    runtime_id: str


S = TypeVar("S", bound=_HasRuntime)


def translate_errors(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """Redis being away (connection, timeout, a server that cannot write) becomes a retryable
    `RuntimeUnavailable` naming the runtime, never the Redis address. Other Redis errors are bugs
    and propagate."""

    @functools.wraps(method)
    async def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(self, *args, **kwargs)
        except (*TRANSPORT_ERRORS, rex.ReadOnlyError) as exc:
            raise unavailable(self.runtime_id, exc) from None
        except rex.ResponseError as exc:
            if str(exc).startswith(_UNAVAILABLE_PREFIXES):
                raise unavailable(self.runtime_id, exc) from None
            failed = located(exc)
            if failed is not None:
                raise failed from exc
            raise

    return wrapper


def unavailable(runtime_id: str, exc: BaseException) -> RuntimeUnavailable:
    return RuntimeUnavailable(
        f"fleet runtime {runtime_id} is unavailable ({type(exc).__name__})", retryable=True
    )


async def answer(value: Awaitable[T] | T) -> T:
    """redis-py types its commands as `Awaitable[T] | T`; the asyncio client always awaits."""
    if inspect.isawaitable(value):
        return await value
    return value
