"""Runs as routes, on the embedded runtime and on a fleet runtime (real Redis, a member in this
process): the run log newest first, one run with its text, and `wait_s` on inputs (200 with the
finished run when it ends in time, else the usual 202)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from runtime_worker.member import Member
from shared.models import MAX_WAIT_S
from tests.gateway.support import events_until, finished, running_app, settings_for
from tests.helpers import wait_until

ECHO_DELAY_MS = 40  # a pause between words: a 60-word answer takes over two seconds


@pytest.fixture(params=["backend-internal", "fleet"])
async def worker(
    request: pytest.FixtureRequest, namespace: str, redis_url: str
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client and the path of a fresh Worker on the runtime named by the parameter."""
    runtime_id = str(request.param)
    fleet: dict[str, Any] = {}
    if runtime_id == "fleet":
        fleet = {"redis_url": redis_url, "fleets": ["fleet"], "runtime_id": "fleet"}
        fleet |= {"heartbeat_ms": 100, "lease_ttl_ms": 1000, "sweep_interval_ms": 200}
    settings = settings_for(namespace, echo_delay_ms=ECHO_DELAY_MS, **fleet)
    member = Member(settings) if fleet else None
    if member is not None:
        await member.start()
    try:
        async with running_app(settings) as (_app, client):
            base = f"/api/runtimes/{runtime_id}/workers"
            created = await client.post(base, json={"display_name": "runs"})
            assert created.status_code == 201, created.text
            yield client, f"{base}/{created.json()['worker_id']}"
    finally:
        if member is not None:
            await member.stop()


async def test_wait_s_answers_200_with_the_run_as_its_detail_shows_it(
    worker: tuple[httpx.AsyncClient, str],
) -> None:
    client, path = worker
    answer = await client.post(f"{path}/inputs", json={"text": "short one", "wait_s": 20})
    assert answer.status_code == 200, answer.text
    run = answer.json()
    assert run["state"] == "finished" and run["result"] == "finished" and run["attempt"] == 1
    assert "short one" in run["text"]
    assert run["usage"]["output_tokens"] > 0 and run["started_at"] <= run["finished_at"]
    detail = await client.get(f"{path}/runs/{run['run_id']}")
    assert detail.status_code == 200 and detail.json() == run
    listed = (await client.get(f"{path}/runs")).json()
    assert listed["runs"] == [{k: v for k, v in run.items() if k != "text"}]
    assert listed["next_before"] is None
    entries = (await client.get(f"{path}/transcript")).json()["entries"]
    assert entries[-1]["role"] == "assistant" and entries[-1]["text"] == run["text"]
    again = await client.post(
        f"{path}/inputs", json={"text": "short two", "input_id": "k-2", "wait_s": 20}
    )
    assert again.status_code == 200 and again.json()["input_id"] == "k-2"
    retried = await client.post(
        f"{path}/inputs", json={"text": "short two", "input_id": "k-2", "wait_s": 20}
    )
    assert retried.status_code == 200 and retried.json() == again.json()  # no second run


async def test_wait_s_answers_202_for_a_long_answer_listed_as_running(
    worker: tuple[httpx.AsyncClient, str],
) -> None:
    client, path = worker
    text = " ".join(f"word{n}" for n in range(60))
    answer = await client.post(f"{path}/inputs", json={"text": text, "wait_s": 0.3})
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    assert set(accepted) == {"input_id", "cursor"}

    async def running() -> bool:
        runs = (await client.get(f"{path}/runs")).json()["runs"]
        return bool(runs) and runs[0]["state"] == "running"

    await wait_until(running, timeout_s=10, what="the long run listed as running")
    top = (await client.get(f"{path}/runs")).json()["runs"][0]
    assert top["input_id"] == accepted["input_id"] and top["result"] is None
    partial = (await client.get(f"{path}/runs/{top['run_id']}")).json()
    assert partial["state"] == "running" and partial["finished_at"] is None
    await events_until(
        client, f"{path}/events", accepted["cursor"], finished(accepted["input_id"]), timeout_s=20
    )
    done = (await client.get(f"{path}/runs/{top['run_id']}")).json()
    assert done["state"] == "finished" and text in done["text"]
    assert done["text"].startswith(partial["text"])


async def test_runs_page_backwards_and_bad_requests_are_typed(
    worker: tuple[httpx.AsyncClient, str],
) -> None:
    client, path = worker
    ids = []
    for n in range(3):
        answer = await client.post(f"{path}/inputs", json={"text": f"r{n}", "wait_s": 20})
        assert answer.status_code == 200, answer.text
        ids.append(answer.json()["input_id"])
    first = (await client.get(f"{path}/runs", params={"limit": 2})).json()
    assert [r["input_id"] for r in first["runs"]] == [ids[2], ids[1]]
    rest = (
        await client.get(f"{path}/runs", params={"limit": 2, "before": first["next_before"]})
    ).json()
    assert [r["input_id"] for r in rest["runs"]] == [ids[0]] and rest["next_before"] is None
    missing = await client.get(f"{path}/runs/{ids[0]}-nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "run_not_found"
    bad_before = await client.get(f"{path}/runs", params={"before": "not-a-cursor"})
    assert bad_before.status_code == 422
    too_long = await client.post(f"{path}/inputs", json={"text": "x", "wait_s": MAX_WAIT_S + 1})
    assert too_long.status_code == 422
    assert len((await client.get(f"{path}/runs", params={"limit": 10})).json()["runs"]) == 3


async def test_openapi_declares_both_answers_of_inputs(
    worker: tuple[httpx.AsyncClient, str],
) -> None:
    client, _ = worker
    spec = (await client.get("/openapi.json")).json()
    inputs = spec["paths"]["/api/runtimes/{runtime_id}/workers/{worker_id}/inputs"]["post"]
    ok = inputs["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    accepted = inputs["responses"]["202"]["content"]["application/json"]["schema"]["$ref"]
    assert ok.endswith("/RunDetail") and accepted.endswith("/InputAccepted")
    runs = spec["paths"]["/api/runtimes/{runtime_id}/workers/{worker_id}/runs"]["get"]
    assert runs["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/RunPage"
    )
