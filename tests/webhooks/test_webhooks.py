"""Webhooks of the embedded runtime through a real gateway app: every run posted once, signed
(verified by `standardwebhooks` in a real receiver on a real socket), retried under the same
webhook-id, delivered after the receiver was down 5 s and after a restart of the SQLite store;
refused URLs are 422 and change nothing; metrics and the last status show the tries."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime_worker.runtime import Runtime
from runtime_worker.store.webhooks import PendingDelivery
from runtime_worker.webhooks import delivery_id
from shared.models import CreateWorker, InputRequest
from shared.settings import Settings
from shared.timeutil import now_s
from shared.webhooks import DeliveryOutcome
from tests.gateway.support import BI, running_app, settings_for, state
from tests.helpers import wait_until
from tests.webhooks.receiver import SECRET, Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.stop()


def _settings(namespace: str, receiver: Receiver, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "webhook_allowed_hosts": [f"127.0.0.1:{receiver.port}"],
        "webhook_secret": SECRET,
        **extra,
    }
    return settings_for(namespace, **values)


async def _last(client: httpx.AsyncClient, worker_id: str) -> dict[str, Any] | None:
    detail = (await client.get(f"{BI}/workers/{worker_id}")).json()
    hook = detail.get("webhook") or {}
    last: dict[str, Any] | None = hook.get("last_delivery")
    return last


async def _send(client: httpx.AsyncClient, worker_id: str, text: str) -> dict[str, Any]:
    response = await client.post(
        f"{BI}/workers/{worker_id}/inputs", json={"text": text, "wait_s": 10}
    )
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


async def test_each_run_is_posted_once_signed_with_its_answer(
    namespace: str, receiver: Receiver
) -> None:
    receiver.start()
    async with running_app(_settings(namespace, receiver)) as (_, client):
        created = await client.post(
            f"{BI}/workers", json={"display_name": "hooked", "webhook_url": receiver.url + "?k=t"}
        )
        assert created.status_code == 201, created.text
        worker_id = created.json()["worker_id"]
        assert created.json()["webhook"]["url"] == receiver.url  # no query shown
        runs = [await _send(client, worker_id, f"hello {n}") for n in range(3)]

        async def three() -> bool:
            return len(receiver.got()) == 3

        await wait_until(three, what="three deliveries")
        got = receiver.got()
        assert receiver.rejected == 0
        assert len({d.webhook_id for d in got}) == 3  # one logical delivery per run
        by_run = {d.body["run_id"]: d.body for d in got}
        for run in runs:
            body = by_run[run["run_id"]]
            assert body["worker_id"] == worker_id and body["runtime_id"] == "backend-internal"
            assert (body["input_id"], body["result"], body["text"]) == (
                run["input_id"],
                "finished",
                run["text"],
            )
            assert body["usage"] == run["usage"]
        assert got[0].path == "/hook?k=t"

        async def shown() -> bool:
            last = await _last(client, worker_id)
            return last is not None and last["run_id"] == runs[-1]["run_id"]

        await wait_until(shown, what="the last delivery on the detail")
        last = await _last(client, worker_id)
        assert last is not None
        assert (last["outcome"], last["status_code"], last["attempts"]) == ("delivered", 200, 1)
        metrics = (await client.get("/metrics")).text
        assert (
            'yoi_webhook_deliveries_total{outcome="delivered",runtime="backend-internal"} 3.0'
            in metrics
        )


async def test_retries_keep_the_webhook_id(namespace: str, receiver: Receiver) -> None:
    receiver.status = 503
    receiver.start()
    async with running_app(_settings(namespace, receiver)) as (_, client):
        created = await client.post(
            f"{BI}/workers", json={"display_name": "hooked", "webhook_url": receiver.url}
        )
        worker_id = created.json()["worker_id"]
        run = await _send(client, worker_id, "hello")

        async def retried() -> bool:
            return len(receiver.got()) >= 2

        await wait_until(retried, what="a retry after a 503")
        receiver.status = 200
        last = await _last(client, worker_id)
        assert last is not None and last["status_code"] == 503 and last["error"] == "http_status"

        async def delivered() -> bool:
            last = await _last(client, worker_id)
            return last is not None and last["outcome"] == "delivered"

        await wait_until(delivered, what="the delivery once the receiver answers 200")
        got = receiver.got()
        assert {d.webhook_id for d in got} == {got[0].webhook_id}
        assert {d.body["run_id"] for d in got} == {run["run_id"]}
        metrics = (await client.get("/metrics")).text
        assert 'yoi_webhook_deliveries_total{outcome="retried",runtime="backend-internal"}' in (
            metrics
        )


async def test_a_receiver_down_for_5_s_gets_the_delivery(
    namespace: str, receiver: Receiver
) -> None:
    async with running_app(_settings(namespace, receiver, webhook_retry_s=60)) as (_, client):
        created = await client.post(
            f"{BI}/workers", json={"display_name": "hooked", "webhook_url": receiver.url}
        )
        worker_id = created.json()["worker_id"]
        run = await _send(client, worker_id, "hello")
        finished_at = time.monotonic()

        async def refused_twice() -> bool:
            last = await _last(client, worker_id)
            return last is not None and last["attempts"] >= 2 and last["error"] == "connect"

        await wait_until(refused_twice, what="two refused tries")
        down_for = max(0.0, 5.0 - (time.monotonic() - finished_at))
        await asyncio.sleep(down_for)  # settle-ok: the receiver stays down 5 s, the behaviour
        receiver.start()

        async def delivered() -> bool:
            return bool(receiver.got())

        await wait_until(delivered, timeout_s=40, what="the delivery after the outage")
        (got,) = receiver.got()
        assert got.body["run_id"] == run["run_id"] and receiver.rejected == 0


async def test_refused_urls_are_422_and_change_nothing(namespace: str, receiver: Receiver) -> None:
    bad = [
        "ftp://127.0.0.1/hook",
        f"http://user:pw@127.0.0.1:{receiver.port}/hook",
        "http://169.254.169.254/latest/meta-data",
        f"http://127.0.0.1:{receiver.port + 1}/hook",
        "not a url",
    ]
    async with running_app(_settings(namespace, receiver)) as (_, client):
        before = (await client.get(f"{BI}/workers")).json()["workers"]
        for url in bad:
            response = await client.post(
                f"{BI}/workers", json={"display_name": "x", "webhook_url": url}
            )
            assert response.status_code == 422, url
            assert response.json()["error"]["code"] == "invalid_input"
            assert "pw" not in response.text
        assert (await client.get(f"{BI}/workers")).json()["workers"] == before
        created = await client.post(
            f"{BI}/workers", json={"display_name": "ok", "webhook_url": receiver.url}
        )
        worker_id = created.json()["worker_id"]
        path = f"{BI}/workers/{worker_id}"
        for url in bad:
            response = await client.patch(path, json={"webhook_url": url})
            assert response.status_code == 422, url
        assert (await client.get(path)).json()["webhook"]["url"] == receiver.url
        other = f"http://127.0.0.1:{receiver.port}/other"
        patched = await client.patch(path, json={"webhook_url": other})
        assert patched.status_code == 200 and patched.json()["webhook"]["url"] == other
        cleared = await client.patch(path, json={"webhook_url": None})
        assert cleared.status_code == 200 and cleared.json()["webhook"] is None
    async with running_app(settings_for(namespace)) as (_, client):  # no allow-list
        response = await client.post(
            f"{BI}/workers", json={"display_name": "x", "webhook_url": receiver.url}
        )
        assert response.status_code == 422
        assert "YOI_WEBHOOK_ALLOWED_HOSTS" in response.json()["error"]["message"]


async def test_a_runtime_default_url_serves_every_worker(
    namespace: str, receiver: Receiver
) -> None:
    receiver.start()
    settings = _settings(namespace, receiver, webhook_url=receiver.url)
    async with running_app(settings) as (_, client):
        created = await client.post(f"{BI}/workers", json={"display_name": "plain"})
        assert created.json()["webhook"] == {
            "url": receiver.url,
            "source": "runtime",
            "last_delivery": None,
        }
        run = await _send(client, created.json()["worker_id"], "hello")

        async def delivered() -> bool:
            return bool(receiver.got())

        await wait_until(delivered, what="the default webhook's delivery")
        assert receiver.got()[0].body["run_id"] == run["run_id"]


async def test_runs_of_a_worker_without_a_url_write_no_delivery_until_one_is_set(
    namespace: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With webhooks on, a Worker without a URL costs its runs no pending delivery (it was
    written, claimed, read back and settled for nothing); a URL set while a run is on its way
    serves that run, as the run ends."""
    receiver.start()
    enqueued: list[PendingDelivery] = []
    async with running_app(_settings(namespace, receiver, echo_delay_ms=100)) as (app, client):
        store = state(app).runtimes().embedded.store
        enqueue = store.enqueue_delivery

        async def counted(delivery: PendingDelivery, due_ms: int) -> None:
            enqueued.append(delivery)
            await enqueue(delivery, due_ms)

        monkeypatch.setattr(store, "enqueue_delivery", counted)
        created = await client.post(f"{BI}/workers", json={"display_name": "plain"})
        worker_id = created.json()["worker_id"]
        for n in range(3):
            await _send(client, worker_id, f"hello {n}")
        assert enqueued == []
        posted = await client.post(f"{BI}/workers/{worker_id}/inputs", json={"text": "a b c d"})
        assert posted.status_code == 202, posted.text

        async def running() -> bool:
            detail = (await client.get(f"{BI}/workers/{worker_id}")).json()
            return detail["in_flight"] is not None

        await wait_until(running, what="the run on its way")
        patched = await client.patch(
            f"{BI}/workers/{worker_id}", json={"webhook_url": receiver.url}
        )
        assert patched.status_code == 200, patched.text

        async def delivered() -> bool:
            return bool(receiver.got())

        await wait_until(delivered, what="the run's delivery")
        assert [d.body["input_id"] for d in receiver.got()] == [posted.json()["input_id"]]
        assert [d.input_id for d in enqueued] == [posted.json()["input_id"]]


async def test_a_reopened_sqlite_runtime_delivers_what_was_pending(
    tmp_path: Path, receiver: Receiver
) -> None:
    settings = Settings(
        webhook_allowed_hosts=[f"127.0.0.1:{receiver.port}"],
        webhook_secret=SECRET,
        webhook_lease_s=1,  # a try claimed as the process closed is due again soon after
        drain_grace_s=0,
    )
    path = tmp_path / "embedded.sqlite3"
    async with Runtime.embedded(settings, path=path) as runtime:
        worker = await runtime.create_worker(
            CreateWorker(display_name="durable", webhook_url=receiver.url)
        )
        accepted = await runtime.send_input(worker.worker_id, InputRequest(text="hello"))
        run = await runtime.wait_run(worker.worker_id, accepted, 10)
        assert run is not None

        async def refused() -> bool:
            hook = (await runtime.get_worker(worker.worker_id)).webhook
            last = hook.last_delivery if hook else None
            return last is not None and last.outcome is DeliveryOutcome.RETRIED

        await wait_until(refused, what="a refused try before the restart")
    receiver.start()
    async with Runtime.embedded(settings, path=path):

        async def delivered() -> bool:
            return bool(receiver.got())

        await wait_until(delivered, timeout_s=20, what="the delivery after reopening")
    assert [d.body["run_id"] for d in receiver.got()] == [run.run_id]


async def test_a_stale_run_id_over_a_rerun_still_delivers_the_inputs_run(
    receiver: Receiver,
) -> None:
    """A host that lost its lease may write its own run id over the rerun's pending entry: the
    deliverer posts the input's finished run all the same."""
    receiver.start()
    settings = Settings(webhook_allowed_hosts=[f"127.0.0.1:{receiver.port}"], webhook_secret=SECRET)
    async with Runtime.embedded(settings) as runtime:
        worker = await runtime.create_worker(
            CreateWorker(display_name="stale", webhook_url=receiver.url)
        )
        accepted = await runtime.send_input(worker.worker_id, InputRequest(text="hello"))
        run = await runtime.wait_run(worker.worker_id, accepted, 10)
        assert run is not None

        async def first() -> bool:
            return len(receiver.got()) == 1

        await wait_until(first, what="the run's own delivery")
        stale = PendingDelivery(
            delivery_id(runtime.runtime_id, worker.worker_id, accepted.input_id),
            worker.worker_id,
            "stale-run-id",
            accepted.input_id,
            now_s(),
        )
        await runtime.store.enqueue_delivery(stale, 0)

        async def second() -> bool:
            return len(receiver.got()) == 2

        await wait_until(second, what="the stale entry's delivery")
        got = receiver.got()
        assert [d.body["run_id"] for d in got] == [run.run_id, run.run_id]
        assert got[0].webhook_id == got[1].webhook_id
