"""`WebhookStore` in memory: pending deliveries live in their Worker's record (so the SQLite
store keeps them in the same row), counts in the process."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

from runtime_worker.store._memory_records import MemoryWorker
from runtime_worker.store.base import WorkerRecord
from runtime_worker.store.webhooks import PendingDelivery, WebhookStore
from shared.webhooks import WebhookDelivery


def _entry(delivery: PendingDelivery, due_ms: int) -> str:
    return json.dumps({"due_ms": due_ms, "entry": delivery.to_json()}, separators=(",", ":"))


def _parse(raw: str) -> tuple[int, PendingDelivery]:
    data = json.loads(raw)
    return int(data["due_ms"]), PendingDelivery.from_json(data["entry"])


class MemoryWebhooks(WebhookStore):
    """A mixin of `MemoryStore`; each method is atomic on the event loop (no await inside)."""

    _workers: dict[str, MemoryWorker]
    _hook_counts: Counter[str] | None = None  # made on first use

    def _get(self, worker_id: str) -> MemoryWorker:
        raise NotImplementedError

    def _find(self, worker_id: str) -> MemoryWorker | None:
        raise NotImplementedError

    async def set_webhook(self, worker_id: str, url: str | None) -> WorkerRecord:
        worker = self._get(worker_id)
        worker.record.webhook_url = url
        return dataclasses.replace(worker.record)

    async def has_webhook(self, worker_id: str) -> bool:
        worker = self._find(worker_id)
        return worker is not None and worker.record.webhook_url is not None

    async def enqueue_delivery(self, delivery: PendingDelivery, due_ms: int) -> None:
        record = self._get(delivery.worker_id).record
        pending = dict(record.webhook_pending)
        pending[delivery.delivery_id] = _entry(delivery, due_ms)
        record.webhook_pending = pending

    async def claim_deliveries(
        self, now_ms: int, lease_ms: int, limit: int
    ) -> list[PendingDelivery]:
        claimed: list[PendingDelivery] = []
        for worker_id in list(self._workers):
            found = self._find(worker_id)
            if found is None or not found.record.webhook_pending:
                continue
            record = self._get(worker_id).record  # through `_get`: the SQLite store saves it
            pending = dict(record.webhook_pending)
            for delivery_id, raw in record.webhook_pending.items():
                due_ms, delivery = _parse(raw)
                if due_ms <= now_ms and len(claimed) < limit:
                    pending[delivery_id] = _entry(delivery, now_ms + lease_ms)
                    claimed.append(delivery)
            record.webhook_pending = pending
            if len(claimed) >= limit:
                break
        return claimed

    async def settle_delivery(
        self,
        delivery: PendingDelivery,
        *,
        retry_at_ms: int | None,
        last: WebhookDelivery | None,
    ) -> None:
        if last is not None:
            if self._hook_counts is None:
                self._hook_counts = Counter()
            self._hook_counts[last.outcome.value] += 1
        if self._find(delivery.worker_id) is None:
            return
        record = self._get(delivery.worker_id).record
        if last is not None:
            record.webhook_last = last.model_dump_json()
        raw = record.webhook_pending.get(delivery.delivery_id)
        if raw is None or _parse(raw)[1].run_id != delivery.run_id:
            return
        pending = dict(record.webhook_pending)
        if retry_at_ms is None:
            del pending[delivery.delivery_id]
        else:
            pending[delivery.delivery_id] = _entry(delivery, retry_at_ms)
        record.webhook_pending = pending

    async def delivery_counts(self) -> dict[str, int]:
        return dict(self._hook_counts or {})
