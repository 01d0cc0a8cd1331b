"""Webhook state every Store keeps: a Worker's URL and last delivery, and pending deliveries
claimed with a lease (a claimed one is not handed out again until its lease ran out), settled
only for the run they were written for."""

from __future__ import annotations

import pytest

from runtime_worker.store.base import Store
from runtime_worker.store.webhooks import PendingDelivery
from shared.errors import WorkerNotFound
from shared.ids import new_id
from shared.timeutil import now_s
from shared.webhooks import DeliveryOutcome, WebhookDelivery
from tests.contract.test_store_contract import _hosted, _worker


def _pending(worker_id: str, run_id: str = "r1", delivery_id: str = "run_a") -> PendingDelivery:
    return PendingDelivery(delivery_id, worker_id, run_id, "i1", now_s())


def _last(outcome: DeliveryOutcome, attempts: int = 1) -> WebhookDelivery:
    return WebhookDelivery(
        run_id="r1",
        outcome=outcome,
        status_code=500,
        error="http_status",
        attempts=attempts,
        at=1.0,
    )


async def test_a_webhook_url_is_set_kept_and_removed(store: Store) -> None:
    record = await _worker(store)
    changed = await store.set_webhook(record.worker_id, "http://127.0.0.1:9/hook")
    assert changed.webhook_url == "http://127.0.0.1:9/hook"
    assert (await store.get_worker(record.worker_id)).webhook_url == "http://127.0.0.1:9/hook"
    await store.set_webhook(record.worker_id, None)
    assert (await store.get_worker(record.worker_id)).webhook_url is None
    with pytest.raises(WorkerNotFound):
        await store.set_webhook(new_id(), "http://127.0.0.1:9/hook")


async def test_has_webhook_says_whether_the_worker_has_its_own_url(store: Store) -> None:
    record = await _worker(store)
    assert not await store.has_webhook(record.worker_id)
    await store.set_webhook(record.worker_id, "http://127.0.0.1:9/hook")
    assert await store.has_webhook(record.worker_id)
    await store.set_webhook(record.worker_id, None)
    assert not await store.has_webhook(record.worker_id)
    assert not await store.has_webhook(new_id())


async def test_a_claimed_delivery_waits_for_its_lease(store: Store) -> None:
    record, _ = await _hosted(store)
    delivery = _pending(record.worker_id)
    await store.enqueue_delivery(delivery, 1_000)
    assert await store.claim_deliveries(999, 5_000, 10) == []  # not due yet
    assert await store.claim_deliveries(1_000, 5_000, 10) == [delivery]
    assert await store.claim_deliveries(5_999, 5_000, 10) == []  # leased to the first claimer
    assert await store.claim_deliveries(6_000, 5_000, 10) == [delivery]  # its claimer died


async def test_settling_retries_then_drops_and_counts(store: Store) -> None:
    record, _ = await _hosted(store)
    delivery = _pending(record.worker_id)
    await store.enqueue_delivery(delivery, 0)
    (claimed,) = await store.claim_deliveries(10, 60_000, 10)
    await store.settle_delivery(
        claimed.tried(), retry_at_ms=20, last=_last(DeliveryOutcome.RETRIED)
    )
    (again,) = await store.claim_deliveries(20, 60_000, 10)
    assert again.attempts == 1
    last = WebhookDelivery(
        run_id="r1", outcome=DeliveryOutcome.DELIVERED, status_code=204, attempts=2, at=2.0
    )
    await store.settle_delivery(again.tried(), retry_at_ms=None, last=last)
    assert await store.claim_deliveries(10**12, 1, 10) == []
    shown = (await store.get_worker(record.worker_id)).webhook_last
    assert shown is not None and WebhookDelivery.model_validate_json(shown) == last
    assert await store.delivery_counts() == {"retried": 1, "delivered": 1}


async def test_a_rerun_replaces_its_delivery_and_the_old_settle_leaves_it(store: Store) -> None:
    record, _ = await _hosted(store)
    first = _pending(record.worker_id, run_id="r1")
    await store.enqueue_delivery(first, 0)
    rerun = _pending(record.worker_id, run_id="r2")  # same input, attempt 2: same delivery id
    await store.enqueue_delivery(rerun, 0)
    await store.settle_delivery(first, retry_at_ms=None, last=None)  # the stale claimer
    assert await store.claim_deliveries(10, 1_000, 10) == [rerun]


async def test_claims_are_bounded(store: Store) -> None:
    record, _ = await _hosted(store)
    for n in range(5):
        await store.enqueue_delivery(_pending(record.worker_id, delivery_id=f"run_{n}"), 0)
    assert len(await store.claim_deliveries(1, 1_000, 3)) == 3
    assert len(await store.claim_deliveries(1, 1_000, 3)) == 2
