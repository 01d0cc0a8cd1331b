"""`AsyncClient`: the gateway's API from asyncio code, one `httpx.AsyncClient` per instance.
Routes are described once (`_calls`), retries (`_retry`) and resuming (`_stream`) decided once;
this module only carries them over the wire."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar, overload

import httpx

from gateway.client import _calls as calls
from gateway.client._calls import COMPANION, Call, worker_path
from gateway.client._retry import REFUSALS, RETRIES, RETRY_WAIT_S, OnWait, Retrying
from gateway.client._sse import SseParser, event_of
from gateway.client._stream import STREAM_READ_TIMEOUT_S, Answer, Resume
from shared.api import AllWorkers, CompanionDetail, FleetOverview, Health, Readiness, StreamTicket
from shared.errors import YoiError
from shared.events import Event, EventPage
from shared.models import (
    CancelResult,
    CreateWorker,
    InputAccepted,
    MemberInfo,
    RunDetail,
    RunPage,
    RuntimeDetail,
    RuntimeSummary,
    ScopeEntry,
    Strategy,
    TranscriptPage,
    WorkerDetail,
    WorkerSummary,
)
from shared.schedules import Schedule

T = TypeVar("T")


class AsyncClient:
    """`Client`'s asyncio twin: the same methods, awaited; streams are async iterators."""

    def __init__(
        self,
        gateway: str | None = None,
        token: str | None = None,
        *,
        timeout_s: float = calls.REQUEST_TIMEOUT_S,
        retry_wait_s: float = RETRY_WAIT_S,
        retries: int = RETRIES,
        refusals: int = REFUSALS,
        on_wait: OnWait | None = None,
    ) -> None:
        self.gateway = (gateway or calls.gateway_from_env()).rstrip("/")
        token = token if token is not None else calls.token_from_env()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.retry_wait_s = retry_wait_s
        self.retries = retries  # sends again after a broken connection (see `_retry`)
        self.refusals = refusals  # waits out a 429/503 `Retry-After` at most this often
        self.on_wait = on_wait
        self._http = httpx.AsyncClient(base_url=self.gateway, headers=headers, timeout=timeout_s)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the wire --------------------------------------------------------------------------

    async def call(self, call: Call[T]) -> T:
        """Send one call; a broken connection is retried (idempotent calls) and a 429/503 with
        `Retry-After` waited out (`refusals` times, up to `retry_wait_s` in all)."""
        retrying = Retrying(
            self.gateway, call, self.retry_wait_s, self.retries, self.refusals, self.on_wait
        )
        while True:
            try:
                response = await self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    json=call.body,
                    timeout=httpx.USE_CLIENT_DEFAULT if call.timeout_s is None else call.timeout_s,
                )
            except httpx.TransportError as exc:
                await asyncio.sleep(retrying.broke(exc))  # backoff before sending again
                continue
            try:
                return call.answer(response.status_code, response.headers, response.content)
            except YoiError as error:
                await asyncio.sleep(retrying.refused(error))  # the wait the server asked for

    async def _follow(self, path: str, after: str | None) -> AsyncGenerator[Event, None]:
        """Every event after `after`, live, resuming by itself after a dropped connection."""
        resume = Resume(self.gateway, after)
        params = {} if after is None else {"after": after}
        timeout = httpx.Timeout(self._http.timeout.connect, read=STREAM_READ_TIMEOUT_S)
        while True:
            cause: Exception | None = None
            try:
                async with self._http.stream(
                    "GET", path, params=params, headers=resume.headers(), timeout=timeout
                ) as response:
                    if response.status_code >= 400:
                        calls.raise_for(
                            response.status_code, response.headers, await response.aread()
                        )
                    parser = SseParser()
                    async for line in response.aiter_lines():
                        message = parser.feed(line)
                        if message is None:
                            continue
                        resume.seen(message.id)
                        if (event := event_of(message)) is not None:
                            yield event
            except (httpx.TransportError, httpx.DecodingError) as exc:
                cause = exc
            except YoiError as exc:
                cause = exc
            await asyncio.sleep(resume.dropped(cause))  # backoff, then resume from the cursor

    # -- runtimes and workers --------------------------------------------------------------

    async def list_runtimes(self) -> list[RuntimeSummary]:
        return await self.call(calls.list_runtimes())

    async def get_runtime(self, runtime_id: str) -> RuntimeDetail:
        return await self.call(calls.get_runtime(runtime_id))

    async def list_workers(self, runtime_id: str) -> list[WorkerSummary]:
        return await self.call(calls.list_workers(runtime_id))

    async def all_workers(self) -> AllWorkers:
        return await self.call(calls.all_workers())

    async def create_worker(
        self,
        runtime_id: str,
        display_name: str,
        *,
        profile: str | None = None,
        scope: list[ScopeEntry] | None = None,
        delegated_from: str | None = None,
        webhook_url: str | None = None,
    ) -> WorkerDetail:
        return await self.call(
            calls.create_worker(
                runtime_id, display_name, profile, scope, delegated_from, webhook_url
            )
        )

    async def create_workers(
        self, runtime_id: str, workers: Sequence[CreateWorker | Mapping[str, Any]]
    ) -> list[WorkerDetail]:
        """Up to 1,000 Workers in one request (each a `CreateWorker` or a mapping of its
        fields: `display_name`, `profile`, `scope`, `delegated_from`, `webhook_url`), their
        details in order. All or nothing for a refused batch: `InvalidInput` naming the item,
        `ScopeConflict`, `CapacityExhausted` create none."""
        return await self.call(calls.create_workers(runtime_id, workers))

    async def update_worker(
        self, runtime_id: str, worker_id: str, *, webhook_url: str | None
    ) -> WorkerDetail:
        """Set the Worker's webhook URL (None removes it)."""
        return await self.call(calls.update_worker(runtime_id, worker_id, webhook_url))

    async def list_runs(
        self, runtime_id: str, worker_id: str, *, limit: int = 50, before: str | None = None
    ) -> RunPage:
        return await self.call(calls.list_runs(worker_path(runtime_id, worker_id), limit, before))

    async def get_run(self, runtime_id: str, worker_id: str, run_id: str) -> RunDetail:
        return await self.call(calls.get_run(worker_path(runtime_id, worker_id), run_id))

    async def get_worker(self, runtime_id: str, worker_id: str) -> WorkerDetail:
        return await self.call(calls.get_worker(runtime_id, worker_id))

    async def stop(self, runtime_id: str, worker_id: str) -> WorkerDetail:
        return await self.call(calls.stop(runtime_id, worker_id))

    @overload
    async def send(
        self,
        runtime_id: str,
        worker_id: str,
        text: str,
        *,
        input_id: str | None = None,
        strategy: Strategy | str | None = None,
        wait_s: None = None,
    ) -> InputAccepted: ...

    @overload
    async def send(
        self,
        runtime_id: str,
        worker_id: str,
        text: str,
        *,
        input_id: str | None = None,
        strategy: Strategy | str | None = None,
        wait_s: float,
    ) -> InputAccepted | RunDetail: ...

    async def send(
        self,
        runtime_id: str,
        worker_id: str,
        text: str,
        *,
        input_id: str | None = None,
        strategy: Strategy | str | None = None,
        wait_s: float | None = None,
    ) -> InputAccepted | RunDetail:
        """With `wait_s`: the finished run when it ended in time, else the acceptance."""
        if wait_s is not None:
            base = worker_path(runtime_id, worker_id)
            return await self.call(calls.send_waiting(base, text, input_id, strategy, wait_s))
        return await self.call(
            calls.send(worker_path(runtime_id, worker_id), text, input_id, strategy)
        )

    async def cancel(self, runtime_id: str, worker_id: str) -> CancelResult:
        return await self.call(calls.cancel(worker_path(runtime_id, worker_id)))

    async def transcript(
        self, runtime_id: str, worker_id: str, *, limit: int = 50, before: str | None = None
    ) -> TranscriptPage:
        return await self.call(calls.transcript(worker_path(runtime_id, worker_id), limit, before))

    async def events(
        self,
        runtime_id: str,
        worker_id: str,
        *,
        after: str | None = None,
        limit: int = 100,
        wait_ms: int = 0,
    ) -> EventPage:
        path = worker_path(runtime_id, worker_id)
        return await self.call(calls.events(path, after, limit, wait_ms))

    async def stream_ticket(self, runtime_id: str, worker_id: str) -> StreamTicket:
        return await self.call(calls.stream_ticket(worker_path(runtime_id, worker_id)))

    def stream(
        self, runtime_id: str, worker_id: str, *, after: str | None = None
    ) -> AsyncGenerator[Event, None]:
        """The Worker's events after `after` (`"now"`: only new ones), live, until closed."""
        return self._follow(calls.stream_path(worker_path(runtime_id, worker_id)), after)

    async def send_and_stream(
        self,
        runtime_id: str,
        worker_id: str,
        text: str,
        *,
        input_id: str | None = None,
        strategy: Strategy | str | None = None,
    ) -> AsyncAnswerStream:
        """Send, then iterate that input's events until its `run_finished`; the stream's
        `answer` holds the text of the current attempt."""
        base = worker_path(runtime_id, worker_id)
        accepted = await self.call(calls.send(base, text, input_id, strategy))
        return AsyncAnswerStream(accepted, self._follow(calls.stream_path(base), accepted.cursor))

    # -- schedules ----------------------------------------------------------------------------

    async def create_schedule(
        self,
        runtime_id: str,
        worker_id: str,
        text: str,
        *,
        at: datetime | str | None = None,
        cron: str | None = None,
        timezone: str | None = None,
    ) -> Schedule:
        """Send `text` once `at` a time (aware, or ISO 8601 with its offset) or on every slot of
        `cron` (five fields or an `@alias`, read in `timezone`); exactly one of the two."""
        return await self.call(
            calls.create_schedule(runtime_id, worker_id, text, at, cron, timezone)
        )

    async def list_schedules(self, runtime_id: str, worker_id: str) -> list[Schedule]:
        return await self.call(calls.list_schedules(runtime_id, worker_id))

    async def delete_schedule(self, runtime_id: str, worker_id: str, schedule_id: str) -> None:
        """No further firing; `ScheduleNotFound` when the Worker has no such schedule."""
        await self.call(calls.delete_schedule(runtime_id, worker_id, schedule_id))

    # -- the Companion (`/api/companion`) ----------------------------------------------------

    async def companion(self) -> CompanionDetail:
        return await self.call(calls.companion())

    async def companion_send(
        self, text: str, *, input_id: str | None = None, strategy: Strategy | str | None = None
    ) -> InputAccepted:
        return await self.call(calls.send(COMPANION, text, input_id, strategy))

    async def companion_cancel(self) -> CancelResult:
        return await self.call(calls.cancel(COMPANION))

    async def companion_transcript(
        self, *, limit: int = 50, before: str | None = None
    ) -> TranscriptPage:
        return await self.call(calls.transcript(COMPANION, limit, before))

    async def companion_events(
        self, *, after: str | None = None, limit: int = 100, wait_ms: int = 0
    ) -> EventPage:
        return await self.call(calls.events(COMPANION, after, limit, wait_ms))

    async def companion_stream_ticket(self) -> StreamTicket:
        return await self.call(calls.stream_ticket(COMPANION))

    def companion_stream(self, *, after: str | None = None) -> AsyncGenerator[Event, None]:
        return self._follow(calls.stream_path(COMPANION), after)

    # -- operations --------------------------------------------------------------------------

    async def health(self) -> Health:
        return await self.call(calls.health())

    async def ready(self) -> Readiness:
        return await self.call(calls.ready())

    async def fleet(self) -> FleetOverview:
        """Every runtime with readiness and members, and every Worker's row (the dashboard's)."""
        return await self.call(calls.fleet())

    async def members(self, runtime_id: str) -> list[MemberInfo]:
        return await self.call(calls.members(runtime_id))

    async def drain_member(self, runtime_id: str, member_id: str) -> MemberInfo:
        """The member hands its Workers back (each once idle) and takes no new ones."""
        return await self.call(calls.drain_member(runtime_id, member_id))

    async def metrics(self) -> str:
        return await self.call(calls.metrics())


class AsyncAnswerStream:
    """The events of one input, ending with its `run_finished`; `answer` follows along."""

    def __init__(self, accepted: InputAccepted, events: AsyncIterator[Event]) -> None:
        self.accepted = accepted
        self.answer = Answer(accepted.input_id)
        self._events = events

    async def __aiter__(self) -> AsyncIterator[Event]:
        try:
            async for event in self._events:
                if self.answer.feed(event):
                    yield event
                    if self.answer.done:
                        return
        finally:
            aclose = getattr(self._events, "aclose", None)
            if aclose is not None:
                await aclose()

    async def wait(self) -> Answer:
        """Read to the end; the finished answer."""
        async for _ in self:
            pass
        return self.answer
