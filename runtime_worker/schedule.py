"""The fleet's scheduled work on arq, run once across the fleet.

Every member runs an arq worker in-process on the runtime's own queue (a key from
`shared.keys`), so scheduled work survives any one member. arq's job ids make it run once:

- deferred inputs: `schedule_input` enqueues a job deferred to `send_at` whose job id derives
  from the `input_id`, so scheduling the same input twice runs it once; the job sends the input
  with strategy `enqueue` and that `input_id`, so even a job run twice answers once;
- schedules (`runtime_worker.schedules`, `…/schedules` on the API): an `at` gets a job deferred
  to its time (job id from the schedule id) that fires it, so it is on time whatever the tick;
- housekeeping, a unique arq cron job every `schedule_tick_s`: fires what is due of every
  schedule (each slot's input id `cron-<schedule>-<slot>`, so each slot fires once even if
  two members race; an `at` whose job was lost fires here too), and prunes the worker index
  and the member registry.

Only scheduled work goes through arq; the hot input path never waits on its polling. Jobs are
JSON, never pickle.

arq keeps its own keys (`arq:job:…`, its queue, its health check) and runs multi-key commands
over them that a Redis Cluster refuses across slots: on a cluster arq needs a Redis of its own,
one node (`YOI_SCHEDULER_REDIS_URL`). Without it scheduled work is off, said once at start and
refused to clients with `unsupported_operation`; the member itself runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from arq import cron
from arq.connections import ArqRedis
from arq.worker import Retry, Worker, func
from pydantic import ValidationError
from redis import exceptions as rex
from redis.asyncio import ConnectionPool

from runtime_worker._backoff import Backoff
from runtime_worker._runtime_base import RuntimeBase
from runtime_worker.cronspec import CronSpec
from runtime_worker.runtime import Runtime
from runtime_worker.schedules import ScheduleEntry
from runtime_worker.store import FleetStore, open_fleet_store
from runtime_worker.store._redis_client import is_cluster
from shared.errors import (
    InvalidInput,
    RuntimeUnavailable,
    UnsupportedOperation,
    WorkerNotFound,
    WorkerStopped,
)
from shared.ids import new_id
from shared.keys import Keys
from shared.models import RuntimeKind, SendInput, Strategy
from shared.settings import Settings
from shared.timeutil import now_s

log = logging.getLogger("yoi.schedule")

SEND_JOB = "yoi_send_input"
FIRE_JOB = "yoi_fire_schedule"
STOP_WAIT_S = 2.0
_SCHEDULE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TRANSPORT = (rex.ConnectionError, rex.TimeoutError, OSError)
PROBE_TIMEOUT_S = 2.0
NEEDS_OWN_REDIS = (
    "scheduled work is off: the fleet runs on a Redis Cluster and arq needs a Redis of its own "
    "(one node): set YOI_SCHEDULER_REDIS_URL"
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, default=str, separators=(",", ":")).encode()


def _loads(raw: bytes) -> Any:
    return json.loads(raw)


def arq_url(settings: Settings, *, cluster: bool) -> str:
    """arq's Redis: `scheduler_redis_url`, else the fleet's own unless that is a cluster."""
    if settings.scheduler_redis_url is not None:
        return settings.scheduler_redis_url
    if settings.redis_url is None:
        raise InvalidInput("scheduled work needs a Redis URL")
    if cluster:
        raise UnsupportedOperation(NEEDS_OWN_REDIS)
    return settings.redis_url


def arq_client(settings: Settings, keys: Keys, *, cluster: bool = False) -> ArqRedis:
    url = arq_url(settings, cluster=cluster)
    pool = ConnectionPool.from_url(url, socket_timeout=5, socket_connect_timeout=2)
    return ArqRedis(
        pool,
        job_serializer=_dumps,
        job_deserializer=_loads,
        default_queue_name=keys.arq_queue(),
    )


# -- the client side ------------------------------------------------------------------------------


async def schedule_input(
    settings: Settings,
    runtime_id: str,
    worker_id: str,
    text: str,
    *,
    send_at: datetime,
    input_id: str | None = None,
) -> str:
    """Send `text` to a Worker at `send_at` (timezone-aware, preferably); returns the input id.
    The same `input_id` scheduled twice is sent once."""
    input_id = input_id or new_id()
    try:  # an invalid input fails now, not at send time
        SendInput(text=text, input_id=input_id)
    except ValidationError:
        raise InvalidInput("the scheduled text or input id is invalid") from None
    keys = Keys(settings.namespace, runtime_id)
    cluster = False
    if settings.scheduler_redis_url is None and settings.redis_url is not None:
        cluster = is_cluster(settings.redis_url, settings.redis_cluster, PROBE_TIMEOUT_S)
    client = arq_client(settings, keys, cluster=cluster)
    try:
        await client.enqueue_job(
            SEND_JOB,
            worker_id,
            text,
            input_id,
            _job_id=keys.arq_job_id("send", input_id),
            _queue_name=keys.arq_queue(),
            _defer_until=send_at,
        )
    except _TRANSPORT as exc:
        raise RuntimeUnavailable(f"fleet runtime {runtime_id} is unavailable") from exc
    finally:
        await client.aclose(close_connection_pool=True)
    return input_id


@contextlib.asynccontextmanager
async def _store(settings: Settings, runtime_id: str) -> AsyncIterator[FleetStore]:
    store = open_fleet_store(settings, runtime_id, role="schedule")
    try:
        yield store
    finally:
        await store.aclose()


async def add_recurring(
    settings: Settings,
    runtime_id: str,
    worker_id: str,
    text: str,
    *,
    cron_expr: str,
    timezone: str = "UTC",
    schedule_id: str | None = None,
) -> str:
    """Send `text` to a Worker on every slot of a cron expression, read in `timezone` (an IANA
    name); returns the id."""
    CronSpec.parse(cron_expr, timezone)
    schedule_id = schedule_id or new_id()
    if not _SCHEDULE_ID.match(schedule_id):
        raise InvalidInput("a schedule id is a short slug")
    entry = ScheduleEntry(
        worker_id=worker_id, text=text, cron=cron_expr, timezone=timezone, created_s=now_s()
    )
    async with _store(settings, runtime_id) as store:
        await store.get_worker(worker_id)
        await store.put_schedule(schedule_id, entry.model_dump_json())
    return schedule_id


async def arm(runtime: RuntimeBase, schedule_id: str, entry: ScheduleEntry) -> None:
    """A fleet schedule just stored: refused when scheduled work is off (a cluster without a
    Redis for arq); an `at` gets its job, deferred to its time."""
    store = runtime.store
    cluster = isinstance(store, FleetStore) and store.cluster
    if cluster and runtime.settings.scheduler_redis_url is None:
        raise UnsupportedOperation(NEEDS_OWN_REDIS)
    if entry.at is None:
        return
    keys = Keys(runtime.settings.namespace, runtime.runtime_id)
    client = arq_client(runtime.settings, keys, cluster=cluster)
    try:
        await client.enqueue_job(
            FIRE_JOB,
            schedule_id,
            _job_id=keys.arq_job_id("schedule", schedule_id),
            _queue_name=keys.arq_queue(),
            _defer_until=entry.at,
        )
    except _TRANSPORT as exc:
        raise RuntimeUnavailable(f"fleet runtime {runtime.runtime_id} is unavailable") from exc
    finally:
        await client.aclose(close_connection_pool=True)


async def remove_recurring(settings: Settings, runtime_id: str, schedule_id: str) -> bool:
    async with _store(settings, runtime_id) as store:
        return await store.remove_schedule(schedule_id)


# -- the member side ------------------------------------------------------------------------------


async def _send_job(ctx: dict[str, Any], worker_id: str, text: str, input_id: str) -> str:
    scheduler: Scheduler = ctx["scheduler"]
    return await scheduler.send(worker_id, text, input_id)


async def _fire_job(ctx: dict[str, Any], schedule_id: str) -> int:
    scheduler: Scheduler = ctx["scheduler"]
    return await scheduler.fire_one(schedule_id)


async def _housekeeping_job(ctx: dict[str, Any]) -> None:
    scheduler: Scheduler = ctx["scheduler"]
    await scheduler.housekeep()


class Scheduler:
    """A member's arq worker on the runtime's queue, and the jobs it runs."""

    def __init__(self, settings: Settings, store: FleetStore, runtime: Runtime | None = None):
        self.settings = settings
        self.store = store
        self.keys = Keys(settings.namespace, store.runtime_id)
        self.runtime = runtime or Runtime(
            store.runtime_id, store, kind=RuntimeKind.FLEET, settings=settings
        )
        self._worker: Worker | None = None

    # -- lifecycle (the member owns the task running `run`) -------------------------------------

    async def run(self) -> None:
        """Run arq's worker; when Redis goes away, close it and start a new one with backoff.
        On a cluster with no Redis of arq's own, say so once and run nothing."""
        if self.store.cluster and self.settings.scheduler_redis_url is None:
            log.error(NEEDS_OWN_REDIS)
            return
        backoff = Backoff("scheduled work", log)
        while True:
            worker = self._worker = self._make_worker()
            try:
                await worker.main()
            except _TRANSPORT as exc:
                delay = backoff.failed(type(exc).__name__)
            else:  # pragma: no cover - main() only returns in burst mode
                delay = backoff.failed("the arq worker returned")
            finally:
                await self._close(worker)
            await asyncio.sleep(delay)

    async def drain(self) -> None:
        """Stop picking jobs and give running ones a moment; the caller then cancels `run`."""
        worker = self._worker
        if worker is None:
            return
        worker.allow_pick_jobs = False
        running = [t for t in worker.tasks.values() if not t.done()]
        if running:
            await asyncio.wait(running, timeout=STOP_WAIT_S)

    def _make_worker(self) -> Worker:
        tick = self.settings.schedule_tick_s
        timing: dict[str, Any] = (
            {"second": set(range(0, 60, tick))}
            if tick < 60
            else {"minute": set(range(0, 60, max(1, tick // 60))), "second": 0}
        )
        return Worker(
            functions=[
                func(_send_job, name=SEND_JOB, max_tries=10),
                func(_fire_job, name=FIRE_JOB, max_tries=10),
            ],
            cron_jobs=[
                cron(
                    _housekeeping_job,
                    name=self.keys.arq_cron("housekeeping"),
                    unique=True,
                    keep_result=max(60, 2 * tick),  # a late member's enqueue of a run is a no-op
                    **timing,
                )
            ],
            redis_pool=arq_client(self.settings, self.keys, cluster=self.store.cluster),
            queue_name=self.keys.arq_queue(),
            handle_signals=False,
            poll_delay=self.settings.schedule_poll_s,
            job_timeout=30,
            keep_result=3600,
            max_jobs=10,
            ctx={"scheduler": self},
            job_serializer=_dumps,
            job_deserializer=_loads,
            log_results=False,
        )

    async def _close(self, worker: Worker) -> None:
        for task in worker.tasks.values():
            task.cancel()
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
        with contextlib.suppress(*_TRANSPORT):
            await worker.pool.aclose(close_connection_pool=True)
        self._worker = None

    # -- the jobs --------------------------------------------------------------------------------

    async def send(self, worker_id: str, text: str, input_id: str) -> str:
        """A scheduled input's job: idempotent by `input_id`, retried while Redis is away."""
        request = SendInput(text=text, input_id=input_id, strategy=Strategy.ENQUEUE)
        try:
            await self.runtime.send_input(worker_id, request)
        except RuntimeUnavailable:
            raise Retry(defer=1) from None
        except (WorkerNotFound, WorkerStopped, InvalidInput) as exc:
            log.warning("scheduled input for worker %s not sent: %s", worker_id, exc.code)
            return exc.code
        return "sent"

    async def housekeep(self) -> None:
        """One housekeeping pass; safe to run concurrently or twice."""
        await self.store.placements()  # drops retention-expired Workers from the index
        await self.store.members()  # forgets members silent for long
        await self.fire_recurring(int(now_s()))

    async def fire_recurring(self, now: int) -> int:
        """Send every schedule's slots due at `now` (unix seconds); returns how many. The
        seconds-level hook of the tests: drive it with the times you choose."""
        return await self.runtime.schedules.fire_due(now)

    async def fire_one(self, schedule_id: str) -> int:
        """An `at`'s job, run at its time (arq may run it a moment early: its clock is in ms)."""
        try:
            return await self.runtime.schedules.fire_due(now_s() + 1, only=schedule_id)
        except RuntimeUnavailable:
            raise Retry(defer=1) from None


__all__ = ["Scheduler", "add_recurring", "arm", "remove_recurring", "schedule_input"]
