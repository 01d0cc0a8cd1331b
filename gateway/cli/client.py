"""The CLI's use of the SDK (`gateway.client`): where the gateway is, and the SDK's typed errors
turned into `CliFailure`s with the CLI's exit codes. The token only travels in a header."""

from __future__ import annotations

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
from shared.logs import redact_url


@dataclass(frozen=True)
class Target:
    """Where the gateway is and how to authenticate; from `--gateway` / `--token`."""

    gateway: str
    token: str | None = None


@contextmanager
def connect(target: Target) -> Iterator[Client]:
    """One SDK client for one command; any typed error leaving the block exits with its code."""
    try:
        with Client(target.gateway, target.token or "") as client:
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
    """The `--gateway` / `--token` the root command parsed."""
    target = ctx.find_root().obj
    assert isinstance(target, Target)
    return target
