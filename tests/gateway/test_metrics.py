"""`/metrics`: request counts by route template, inputs, runs, latency and the stream gauges."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.support import BI, create_worker, events_until, finished, open_stream, state
from tests.helpers import wait_until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return float(samples.get((name, tuple(sorted(labels.items()))), 0.0))


@pytest.mark.chaos
async def test_requests_inputs_runs_and_latency(client: httpx.AsyncClient) -> None:
    worker_id = await create_worker(client)
    worker = f"{BI}/workers/{worker_id}"
    sent = (await client.post(f"{worker}/inputs", json={"text": "/slow measured"})).json()
    busy = await client.post(f"{worker}/inputs", json={"text": "no", "strategy": "reject"})
    assert busy.status_code == 409
    await client.get(f"{BI}/workers/01890a5d-ac96-774b-bcce-b302099a8057")
    await events_until(client, f"{worker}/events", sent["cursor"], finished(sent["input_id"]))

    samples = await scrape(client)
    route = "/api/runtimes/{runtime_id}/workers/{worker_id}"
    assert value(samples, "yoi_http_requests_total", route=route, method="GET", status="404") == 1
    assert (
        value(
            samples, "yoi_http_requests_total", route=route + "/inputs", method="POST", status="202"
        )
        == 1
    )
    assert (
        value(
            samples, "yoi_http_requests_total", route=route + "/inputs", method="POST", status="409"
        )
        == 1
    )
    assert value(samples, "yoi_inputs_accepted_total", runtime="backend-internal") == 1
    assert (
        value(samples, "yoi_inputs_rejected_total", runtime="backend-internal", code="worker_busy")
        == 1
    )
    assert value(samples, "yoi_runs_total", runtime="backend-internal", result="finished") == 1
    assert value(samples, "yoi_runtime_up", runtime="backend-internal") == 1
    count = value(
        samples, "yoi_run_latency_seconds_count", runtime="backend-internal", result="finished"
    )
    total = value(
        samples, "yoi_run_latency_seconds_sum", runtime="backend-internal", result="finished"
    )
    assert count == 1 and 0.2 < total < 10  # chaos `/slow` pauses 200 ms between pieces
    text = (await client.get("/metrics")).text
    assert worker_id not in text  # route templates, never concrete paths


async def test_stream_gauges_clients_readers_and_lag(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    worker = f"{BI}/workers/{await create_worker(client)}"
    stream = await open_stream(app, f"{worker}/events/stream").open()
    await stream.read_until(lambda ms: len(ms) >= 2)
    samples = await scrape(client)
    assert value(samples, "yoi_sse_clients") == 1 and value(samples, "yoi_sse_readers") == 1
    assert value(samples, "yoi_sse_stream_lag_events") == 0

    stream.reading.clear()  # a client that stops reading: its events wait in its buffer
    sent = (await client.post(f"{worker}/inputs", json={"text": "lagging behind"})).json()
    await events_until(client, f"{worker}/events", sent["cursor"], finished(sent["input_id"]))
    hubs = state(app).hubs

    async def lagging() -> bool:
        return hubs.max_lag() > 0

    await wait_until(lagging, what="events waiting in the stalled connection's buffer")
    assert value(await scrape(client), "yoi_sse_stream_lag_events") >= 1
    stream.reading.set()
    await stream.read_until(lambda ms: any(m.event == "run_finished" for m in ms))
    await stream.close()
    samples = await scrape(client)
    assert value(samples, "yoi_sse_clients") == 0 and value(samples, "yoi_sse_readers") == 0
    assert value(samples, "yoi_sse_stream_lag_events") == 0
    stream_route = "/api/runtimes/{runtime_id}/workers/{worker_id}/events/stream"
    assert (
        value(samples, "yoi_http_requests_total", route=stream_route, method="GET", status="200")
        == 1
    )


async def test_each_app_has_its_own_registry(namespace: str) -> None:
    from gateway.app import create_app
    from tests.gateway.support import settings_for

    first, second = create_app(settings_for(namespace)), create_app(settings_for(namespace))
    assert state(first).metrics.registry is not state(second).metrics.registry
