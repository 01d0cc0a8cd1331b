"""`WebhookStore` on Redis. A Worker's webhook URL and last delivery are fields of its record
(`hook_url`, `hook_last`); pending deliveries are runtime-wide (`Keys.hooks`, `hooks_due`,
`hooks_stats`: one hash tag). Each script (`lua/webhook_*.lua`) touches one Redis Cluster slot:
the settle and the last-delivery write are two calls."""

from __future__ import annotations

from runtime_worker.store import _redis_codec as codec
from runtime_worker.store._redis_client import Client
from runtime_worker.store._scripts import Scripts, answer, argv, check, translate_errors
from runtime_worker.store.base import WorkerRecord
from runtime_worker.store.webhooks import PendingDelivery, WebhookStore
from shared.errors import WorkerNotFound
from shared.keys import Keys
from shared.webhooks import WebhookDelivery


class RedisWebhooks(WebhookStore):
    """A mixin of `RedisStore` (which gives the client, keys and call deadline)."""

    client: Client
    keys: Keys
    runtime_id: str
    call_timeout_s: float
    _scripts: Scripts

    def _hook_keys(self) -> list[str]:
        return [self.keys.hooks(), self.keys.hooks_due(), self.keys.hooks_stats()]

    @translate_errors
    async def set_webhook(self, worker_id: str, url: str | None) -> WorkerRecord:
        try:
            record_key = self.keys.record(worker_id)
        except ValueError:
            raise WorkerNotFound(f"no worker {worker_id}") from None
        reply = await self._scripts.webhook_url(
            keys=[record_key], args=argv("webhook_url", url=url or "")
        )
        flat = check(reply, worker_id)
        return codec.record_from_fields(dict(zip(flat[::2], flat[1::2], strict=True)), worker_id)

    @translate_errors
    async def has_webhook(self, worker_id: str) -> bool:
        try:
            record_key = self.keys.record(worker_id)
        except ValueError:
            return False
        return bool(await answer(self.client.hexists(record_key, "hook_url")))

    @translate_errors
    async def enqueue_delivery(self, delivery: PendingDelivery, due_ms: int) -> None:
        args = argv(
            "webhook_enqueue",
            delivery_id=delivery.delivery_id,
            entry=delivery.to_json(),
            due_ms=due_ms,
        )
        check(await self._scripts.webhook_enqueue(keys=self._hook_keys()[:2], args=args))

    @translate_errors
    async def claim_deliveries(
        self, now_ms: int, lease_ms: int, limit: int
    ) -> list[PendingDelivery]:
        args = argv("webhook_claim", now_ms=now_ms, lease_until_ms=now_ms + lease_ms, limit=limit)
        reply = await self._scripts.webhook_claim(keys=self._hook_keys()[:2], args=args)
        return [PendingDelivery.from_json(entry) for entry in check(reply)]

    @translate_errors
    async def settle_delivery(
        self,
        delivery: PendingDelivery,
        *,
        retry_at_ms: int | None,
        last: WebhookDelivery | None,
    ) -> None:
        args = argv(
            "webhook_settle",
            delivery_id=delivery.delivery_id,
            run_id=delivery.run_id,
            retry_at_ms="" if retry_at_ms is None else retry_at_ms,
            entry=delivery.to_json(),
            outcome="" if last is None else last.outcome.value,
        )
        check(await self._scripts.webhook_settle(keys=self._hook_keys(), args=args))
        if last is not None:
            record_key = self.keys.record(delivery.worker_id)
            args = argv("webhook_last", last=last.model_dump_json())
            check(await self._scripts.webhook_last(keys=[record_key], args=args))

    @translate_errors
    async def delivery_counts(self) -> dict[str, int]:
        raw = await answer(self.client.hgetall(self.keys.hooks_stats()))
        return {str(name): int(count) for name, count in raw.items()}
