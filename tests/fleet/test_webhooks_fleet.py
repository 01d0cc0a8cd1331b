"""Webhooks on a fleet: the member that ran a run is killed (-9) while the receiver is down;
once the receiver is up, another member delivers the run, signed, under the same webhook-id."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from runtime_worker.runtime import Runtime
from shared.models import CreateWorker, InputRequest
from shared.settings import Settings
from shared.webhooks import DeliveryOutcome
from tests.fleet.support import HEARTBEAT_MS, LEASE_TTL_MS, Fleet, wait_finished, wait_hosted
from tests.fleet.support import records as records_of
from tests.helpers import wait_until
from tests.webhooks.receiver import SECRET, Receiver

pytestmark = [pytest.mark.slow, pytest.mark.redis]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.stop()


def _hook_env(receiver: Receiver) -> dict[str, str]:
    return {
        "webhook_allowed_hosts": f"127.0.0.1:{receiver.port}",
        "webhook_secret": SECRET,
        "webhook_lease_s": "1",
        "webhook_retry_s": "120",
    }


async def test_a_killed_members_delivery_is_made_by_another(
    fleet: Fleet, redis_url: str, namespace: str, receiver: Receiver
) -> None:
    env = _hook_env(receiver)
    for name in ("m1", "m2"):
        fleet.start(name, raw_env={f"YOI_{k.upper()}": v for k, v in env.items()})
    settings = Settings(
        redis_url=redis_url,
        namespace=namespace,
        lease_ttl_ms=LEASE_TTL_MS,
        heartbeat_ms=HEARTBEAT_MS,
        webhook_allowed_hosts=[f"127.0.0.1:{receiver.port}"],
        webhook_secret=SECRET,
    )
    client = Runtime.fleet("fleet", settings)
    try:
        worker = await client.create_worker(
            CreateWorker(display_name="hooked", webhook_url=receiver.url)
        )
        await wait_hosted(client, [worker.worker_id])
        host = (await records_of(client))[worker.worker_id].host
        assert host in fleet.members
        accepted = await client.send_input(worker.worker_id, InputRequest(text="hello"))
        await wait_finished(client, {worker.worker_id: {accepted.input_id}})

        async def tried() -> bool:
            hook = (await client.get_worker(worker.worker_id)).webhook
            last = hook.last_delivery if hook else None
            return last is not None and last.outcome is DeliveryOutcome.RETRIED

        await wait_until(tried, timeout_s=15, what="a refused try by the run's host")
        victim = fleet.members[host]
        victim.signal(signal.SIGKILL)
        assert victim.wait_exit() == -signal.SIGKILL
        receiver.start()

        async def delivered() -> bool:
            return bool(receiver.got())

        await wait_until(delivered, timeout_s=30, what="the delivery by the other member")
        got = receiver.got()
        assert receiver.rejected == 0
        assert len({d.webhook_id for d in got}) == 1
        body = got[0].body
        assert (body["worker_id"], body["input_id"], body["result"]) == (
            worker.worker_id,
            accepted.input_id,
            "finished",
        )

        async def shown() -> bool:
            hook = (await client.get_worker(worker.worker_id)).webhook
            last = hook.last_delivery if hook else None
            return last is not None and last.outcome is DeliveryOutcome.DELIVERED

        await wait_until(shown, timeout_s=10, what="the delivery on the Worker's detail")
    finally:
        await client.aclose()
