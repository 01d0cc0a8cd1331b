"""The CLI's HTTP client of the gateway: typed answers, typed failures, and the live event stream.

One `httpx.Client` per command. The token only ever travels in the `Authorization` header.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
import typer
from pydantic import BaseModel, ValidationError

from gateway.cli.errors import ApiError, CliFailure, unauthorized, unreachable
from shared.errors import ErrorEnvelope
from shared.events import Event, parse_event
from shared.logs import redact_url

M = TypeVar("M", bound=BaseModel)

REQUEST_TIMEOUT_S = 10.0
# Longer than the gateway's heartbeat interval: a silent stream this long means a dead gateway.
STREAM_READ_TIMEOUT_S = 60.0
STREAM_RETRIES = 5


@dataclass(frozen=True)
class Target:
    """Where the gateway is and how to authenticate; from `--gateway` / `--token`."""

    gateway: str
    token: str | None = None


@dataclass
class SseMessage:
    id: str | None = None
    event: str = "message"
    data: str = ""


def iter_sse(lines: Iterator[str]) -> Iterator[SseMessage]:
    """Server-Sent Events framing: fields until a blank line; comments (heartbeats) skipped."""
    message = SseMessage()
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                message.data = "\n".join(data)
                yield message
            message, data = SseMessage(), []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "id":
            message.id = value
        elif name == "event":
            message.event = value


class GatewayClient:
    """Calls the gateway's `/api` and turns every failure into a `CliFailure` with its exit code."""

    def __init__(self, target: Target, *, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.target = target
        headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
        self._http = httpx.Client(base_url=target.gateway, headers=headers, timeout=timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._http.close()

    # -- plain requests --------------------------------------------------------------------------

    def get(
        self,
        path: str,
        model: type[M],
        params: Mapping[str, str | int] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> M:
        return self._request("GET", path, model, params=params, timeout_s=timeout_s)

    def post(self, path: str, model: type[M], body: Mapping[str, Any] | None = None) -> M:
        return self._request("POST", path, model, body=body)

    def _request(
        self,
        method: str,
        path: str,
        model: type[M],
        *,
        params: Mapping[str, str | int] | None = None,
        body: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> M:
        timeout = httpx.USE_CLIENT_DEFAULT if timeout_s is None else timeout_s
        try:
            response = self._http.request(method, path, params=params, json=body, timeout=timeout)
        except httpx.TimeoutException as exc:
            raise CliFailure(
                f"the gateway at {redact_url(self.target.gateway)} did not answer in time"
            ) from exc
        except httpx.TransportError as exc:
            raise unreachable(self.target.gateway) from exc
        self._raise_for_error(response)
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise CliFailure(f"unexpected answer from the gateway to {method} {path}") from exc

    @staticmethod
    def _raise_for_error(response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        if response.status_code == 401:
            raise unauthorized()
        try:
            error = ErrorEnvelope.model_validate_json(response.read()).error
        except ValidationError:
            raise CliFailure(f"the gateway answered HTTP {response.status_code}") from None
        raise ApiError(error.code, error.message, status=response.status_code)

    # -- the live event stream -------------------------------------------------------------------

    def follow(self, runtime_id: str, worker_id: str, after: str | None) -> Iterator[Event]:
        """Every event after `after`, live. A dropped stream reconnects with `Last-Event-ID`
        set to the last cursor seen, so nothing is missed and nothing repeats."""
        path = f"/api/runtimes/{runtime_id}/workers/{worker_id}/events/stream"
        timeout = httpx.Timeout(REQUEST_TIMEOUT_S, read=STREAM_READ_TIMEOUT_S)
        params = {} if after is None else {"after": after}
        cursor, failures = after, 0
        while True:
            headers = {} if cursor is None else {"Last-Event-ID": cursor}
            error: Exception | None = None
            try:
                with self._http.stream(
                    "GET", path, params=params, headers=headers, timeout=timeout
                ) as response:
                    self._raise_for_error(response)
                    for message in iter_sse(response.iter_lines()):
                        failures = 0
                        cursor = message.id or cursor
                        if (event := _event(message)) is not None:
                            yield event
            except (httpx.TransportError, httpx.DecodingError) as exc:
                error = exc
            # Dropped, or closed by the gateway (e.g. this client fell behind): resume from the
            # cursor, backing off while reconnecting brings nothing.
            failures += 1
            if failures > STREAM_RETRIES:
                raise unreachable(self.target.gateway) from error
            time.sleep(min(0.1 * 2**failures, 2.0))  # backoff before reconnecting


def _event(message: SseMessage) -> Event | None:
    """The typed event, its cursor taken from the SSE id; None for a type this CLI predates."""
    try:
        event = parse_event(message.data)
    except (ValidationError, json.JSONDecodeError):
        return None
    if message.id and not event.cursor:
        event.cursor = message.id
    return event


def target_of(ctx: typer.Context) -> Target:
    """The `--gateway` / `--token` the root command parsed."""
    target = ctx.find_root().obj
    assert isinstance(target, Target)
    return target
