"""`Deliverer`: posts a signed JSON body to a Worker's webhook on every `run_finished`.

The host writes each run's pending delivery before the run's finish (`WebhookStore`) when its
Worker has a URL (its own as the run ends, or the runtime's `webhook_url`); this
task, one per host (the embedded runtime's and every fleet member's), claims due deliveries
with a lease, posts them with the Standard Webhooks headers (`webhook-id` the same for every
try of one input's run, `webhook-timestamp`, `webhook-signature`), and retries with backoff
until `webhook_retry_s` after the run, then gives up (counted `failed`). A delivery whose host
died is due again once its lease ran out, and any host takes it: at least once, never lost.
Off the run path: a run only writes its pending entry; the posting happens here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from runtime_worker.store.base import QueuedInput, Store
from runtime_worker.store.webhooks import PendingDelivery
from runtime_worker.webhook_urls import check_webhook_url, webhooks_enabled
from shared.aio import cancel_and_wait
from shared.errors import InvalidInput, RuntimeUnavailable, WorkerNotFound
from shared.models import RunDetail
from shared.settings import Settings
from shared.timeutil import now_s
from shared.webhooks import DeliveryOutcome, WebhookDelivery

log = logging.getLogger("yoi.webhooks")

BATCH = 16  # deliveries claimed (and posted concurrently) at once
IDLE_POLL_S = 1.0  # with nothing due, look again this often (a local finish pokes sooner)
NOT_FINISHED_S = 0.5  # a delivery whose run is not in the log yet is looked at again after this
MAX_BACKOFF_S = 30.0
RECENT_RUNS = 50  # finished runs looked through for a delivery's input when its run id is gone


def delivery_id(runtime_id: str, worker_id: str, input_id: str) -> str:
    """The `webhook-id` of an input's run: the same for every try and every attempt."""
    digest = hashlib.sha256(f"{runtime_id}/{worker_id}/{input_id}".encode()).hexdigest()
    return f"run_{digest[:32]}"


def backoff_s(attempts: int) -> float:
    """The wait after the `attempts`-th failed try: 0.5 s doubling, at most 30 s, jittered."""
    return min(MAX_BACKOFF_S, 0.5 * 2.0 ** min(attempts - 1, 16)) * random.uniform(0.8, 1.0)


def body_of(runtime_id: str, worker_id: str, run: RunDetail) -> str:
    """The signed JSON body: the run as `GET …/runs/{run_id}` shows it, with where it ran."""
    data = {
        "type": "run_finished",
        "runtime_id": runtime_id,
        "worker_id": worker_id,
        "run_id": run.run_id,
        "input_id": run.input_id,
        "attempt": run.attempt,
        "result": None if run.result is None else run.result.value,
        "reason": run.reason,
        "text": run.text,
        "usage": run.usage.model_dump(mode="json"),
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }
    return json.dumps(data, separators=(",", ":"))


class Deliverer:
    def __init__(self, store: Store, runtime_id: str, settings: Settings) -> None:
        self.store = store
        self.runtime_id = runtime_id
        self.settings = settings
        secret = settings.webhook_secret
        self._signer = Webhook(secret.get_secret_value()) if secret is not None else None
        self._poke = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def for_settings(cls, store: Store, runtime_id: str, settings: Settings) -> Deliverer | None:
        """A deliverer when this runtime has webhooks on (an allow-list and a secret)."""
        return cls(store, runtime_id, settings) if webhooks_enabled(settings) else None

    # -- the host's side -------------------------------------------------------------------------

    async def before_finish(self, worker_id: str, item: QueuedInput, run_id: str) -> None:
        """Keep the run's delivery in the store before its finish is written, when there is a
        URL to post it to: the runtime's default, or the Worker's own as the run ends (one
        read; a delivery for a Worker without one was four more calls, to find nothing)."""
        if self.settings.webhook_url is None and not await self.store.has_webhook(worker_id):
            return
        pending = PendingDelivery(
            delivery_id=delivery_id(self.runtime_id, worker_id, item.input_id),
            worker_id=worker_id,
            run_id=run_id,
            input_id=item.input_id,
            created_at=now_s(),
        )
        await self.store.enqueue_delivery(pending, int(now_s() * 1000))

    def after_finish(self) -> None:
        self._poke.set()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            timeout = httpx.Timeout(self.settings.webhook_timeout_s)
            self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
            self._task = asyncio.create_task(self._loop(), name="yoi-webhooks")

    async def stop(self) -> None:
        """Cancel the loop (a claimed delivery is due again after its lease). Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # -- delivering ------------------------------------------------------------------------------

    async def _loop(self) -> None:
        lease_ms = int(self.settings.webhook_lease_s * 1000)
        failures = 0
        while True:
            try:
                claimed = await self.store.claim_deliveries(int(now_s() * 1000), lease_ms, BATCH)
                failures = 0
            except Exception as exc:  # the store is away (or a bug): back off, never end
                failures += 1
                if not isinstance(exc, RuntimeUnavailable):
                    log.warning("webhook claims failed: %s", type(exc).__name__)
                await asyncio.sleep(backoff_s(failures))  # no hot retry
                continue
            if claimed:
                await asyncio.gather(*(self._guarded(d) for d in claimed))
                continue
            self._poke.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_POLL_S):
                    await self._poke.wait()

    async def _guarded(self, delivery: PendingDelivery) -> None:
        try:
            await self.deliver(delivery)
        except RuntimeUnavailable:
            log.debug("webhook delivery paused: the store is unavailable")
        except Exception as exc:  # one bad delivery never ends the loop; its lease runs out
            log.warning("webhook delivery failed unexpectedly: %s", type(exc).__name__)

    async def deliver(self, delivery: PendingDelivery) -> None:
        """One try of one claimed delivery, settled in the store."""
        now = now_s()
        expired = now >= delivery.created_at + self.settings.webhook_retry_s
        try:
            record = await self.store.get_worker(delivery.worker_id)
            run = await self._run_of(delivery)
        except WorkerNotFound:
            await self._give_up(delivery, "run_gone")
            return
        url = record.webhook_url or self.settings.webhook_url
        if url is None:  # no webhook for this Worker: nothing to post
            await self.store.settle_delivery(delivery, retry_at_ms=None, last=None)
            return
        if run is None:
            # Not finished yet (its host died before the finish: it runs again), or it left
            # the log: wait, bounded like the retries.
            if expired:
                await self._give_up(delivery, "run_gone")
            else:
                retry = int((now + NOT_FINISHED_S) * 1000)
                await self.store.settle_delivery(delivery, retry_at_ms=retry, last=None)
            return
        try:
            check_webhook_url(url, self.settings)
        except InvalidInput:
            await self._give_up(delivery, "refused_url")
            return
        status, error = await self._post(
            url, delivery.delivery_id, body_of(self.runtime_id, delivery.worker_id, run)
        )
        tried = delivery.tried()
        if error is None:
            await self._settle(tried, DeliveryOutcome.DELIVERED, None, status, None)
            return
        retry_at = now_s() + backoff_s(tried.attempts)
        if retry_at >= delivery.created_at + self.settings.webhook_retry_s:
            log.warning("webhook of a run given up after %d tries (%s)", tried.attempts, error)
            await self._settle(tried, DeliveryOutcome.FAILED, None, status, error)
        else:
            await self._settle(tried, DeliveryOutcome.RETRIED, retry_at, status, error)

    async def _run_of(self, delivery: PendingDelivery) -> RunDetail | None:
        """The delivery's finished run: by its id, else the newest finished run of its input
        (a host that lost its lease may have written its run id over the rerun's)."""
        run = await self.store.find_run(delivery.worker_id, delivery.run_id)
        if run is not None:
            return run
        page = await self.store.read_runs(delivery.worker_id, RECENT_RUNS, None)
        return next((r for _, r in page.runs if r.input_id == delivery.input_id), None)

    async def _post(self, url: str, message_id: str, body: str) -> tuple[int | None, str | None]:
        """POST the signed body: (status code, error kind or None on a 2xx)."""
        assert self._client is not None and self._signer is not None
        stamp = datetime.now(tz=UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(stamp.timestamp())),
            "webhook-signature": self._signer.sign(message_id, stamp, body),
            "user-agent": "yoi-fleet-webhooks",
        }
        try:
            response = await self._client.post(url, content=body.encode(), headers=headers)
        except httpx.TimeoutException:
            return None, "timeout"
        except httpx.HTTPError:
            return None, "connect"
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, "http_status"

    async def _give_up(self, delivery: PendingDelivery, error: str) -> None:
        await self._settle(delivery.tried(), DeliveryOutcome.FAILED, None, None, error)

    async def _settle(
        self,
        delivery: PendingDelivery,
        outcome: DeliveryOutcome,
        retry_at_s: float | None,
        status: int | None,
        error: str | None,
    ) -> None:
        last = WebhookDelivery(
            run_id=delivery.run_id,
            outcome=outcome,
            status_code=status,
            error=error,
            attempts=delivery.attempts,
            at=now_s(),
        )
        retry = None if retry_at_s is None else int(retry_at_s * 1000)
        await self.store.settle_delivery(delivery, retry_at_ms=retry, last=last)
