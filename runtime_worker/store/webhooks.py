"""The store role of webhooks: a Worker's webhook URL and last delivery, and the runtime's
pending deliveries, claimed with a lease so two hosts do not post one run at once.

A host writes a run's pending delivery (`enqueue_delivery`) *before* its `finish_run`: a host
killed in between leaves a delivery whose run is not in the run log yet, which the deliverer
waits for (the input runs again, attempt 2, and its enqueue replaces the entry with the new
run id). So every finished run of a Worker with a webhook (its own URL as the run ends, or the
runtime's default) has its delivery in the store, whichever process dies when.
A claim pushes the delivery's due time one lease on: the claimer posts and settles it; if it
dies, the delivery is due again once the lease ran out and any host takes it.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from shared.webhooks import WebhookDelivery

if TYPE_CHECKING:  # base.py builds `Store` from this role
    from runtime_worker.store.base import WorkerRecord

ENTRY_VERSION = 1


@dataclass(frozen=True)
class PendingDelivery:
    """One run's webhook to post. `delivery_id` is the `webhook-id` header: one per input, the
    same for every attempt and every rerun of it."""

    delivery_id: str
    worker_id: str
    run_id: str
    input_id: str
    created_at: float  # unix seconds: the delivery gives up `webhook_retry_s` after this
    attempts: int = 0

    def to_json(self) -> str:
        return json.dumps({"v": ENTRY_VERSION, **asdict(self)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> PendingDelivery:
        data = json.loads(raw)
        data.pop("v", None)
        return cls(**data)

    def tried(self) -> PendingDelivery:
        return replace(self, attempts=self.attempts + 1)


class WebhookStore(ABC):
    """Webhook state of one runtime; every method is one atomic step of its store."""

    @abstractmethod
    async def set_webhook(self, worker_id: str, url: str | None) -> WorkerRecord:
        """Set (or, with None, remove) the Worker's own webhook URL; `WorkerNotFound` when
        there is no such Worker. Answers the record as it is now."""

    @abstractmethod
    async def has_webhook(self, worker_id: str) -> bool:
        """Whether the Worker has a webhook URL of its own now (False when there is no such
        Worker): a host asks as a run ends, so a Worker without one costs no delivery."""

    @abstractmethod
    async def enqueue_delivery(self, delivery: PendingDelivery, due_ms: int) -> None:
        """Keep a delivery until it is settled, due at `due_ms`; one with the same id is
        replaced (a rerun of the same input)."""

    @abstractmethod
    async def claim_deliveries(
        self, now_ms: int, lease_ms: int, limit: int
    ) -> list[PendingDelivery]:
        """Up to `limit` deliveries due at `now_ms`, each pushed to `now_ms + lease_ms` so no
        other claimer takes it meanwhile."""

    @abstractmethod
    async def settle_delivery(
        self,
        delivery: PendingDelivery,
        *,
        retry_at_ms: int | None,
        last: WebhookDelivery | None,
    ) -> None:
        """After a try: keep the delivery (as given, with its attempt count) due at
        `retry_at_ms`, or drop it when None. Only while the store still holds this delivery
        for this run (a newer attempt's entry is left alone). `last`, when given, becomes the
        Worker's last delivery and counts its outcome."""

    @abstractmethod
    async def delivery_counts(self) -> dict[str, int]:
        """Tries by outcome (`shared.webhooks.DeliveryOutcome`) since the store began."""
