"""The CLI's use of the SDK (`gateway.client`): where the gateway is, and the SDK's typed errors
turned into `CliFailure`s with the CLI's exit codes. The token only travels in a header.

A 429 or 503 with `Retry-After` is waited out by the SDK (at most `--retries` times, 30 s in
all); each wait is said on stderr, so a person sees why the command is slow. Still refused, the
command exits `OVERLOADED`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import typer

from gateway.cli.errors import ApiError, CliFailure, unauthorized, unreachable
from gateway.client import (
    Client,
    ConnectionFailed,
    Unauthorized,
    UnexpectedResponse,
    UnknownApiError,
    YoiError,
)
from gateway.client._retry import REFUSALS, OnWait
from shared.logs import redact_url


@dataclass(frozen=True)
class Target:
    """Where the gateway is, how to authenticate, how often to wait out a refusal; from
    `--gateway` / `--token` / `--retries`."""

    gateway: str
    token: str | None = None
    retries: int = REFUSALS


def say_waiting(retries: int) -> OnWait:
    """One stderr line per wait: the refusal's status and code, the wait, which retry."""

    def say(error: YoiError, delay_s: float, retry: int) -> None:
        print(
            f"yoi: the gateway answered {error.http_status} {error.code}; "
            f"retrying in {delay_s:g} s ({retry}/{retries})",
            file=sys.stderr,
            flush=True,
        )

    return say


@contextmanager
def connect(target: Target) -> Iterator[Client]:
    """One SDK client for one command; any typed error leaving the block exits with its code."""
    try:
        with Client(
            target.gateway,
            target.token or "",
            refusals=target.retries,
            on_wait=say_waiting(target.retries),
        ) as client:
            yield client
    except Unauthorized:
        raise unauthorized() from None
    except ConnectionFailed as exc:
        if exc.timed_out:
            raise CliFailure(
                f"the gateway at {redact_url(target.gateway)} did not answer in time"
            ) from None
        raise unreachable(target.gateway) from None
    except UnexpectedResponse as exc:
        raise CliFailure(exc.message) from None
    except UnknownApiError as exc:
        raise ApiError(exc.wire_code, exc.message, status=exc.status) from None
    except YoiError as exc:
        raise ApiError(exc.code, exc.message, status=exc.http_status) from None


def target_of(ctx: typer.Context) -> Target:
    """The `--gateway` / `--token` / `--retries` the root command parsed."""
    target = ctx.find_root().obj
    assert isinstance(target, Target)
    return target
