"""`POST …/workers:batch` through the HTTP API, on the embedded runtime and on a fleet over a
real Redis with an in-process member: every Worker made in order, or for a refused batch (a bad
item, a scope conflict inside the batch or with a live Worker, no room for all) none at all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.state import Gateway
from runtime_worker.member import Member
from shared.models import MAX_CREATE_BATCH
from shared.settings import Settings
from shared.timeutil import monotonic_s
from tests.gateway.support import BI, fleet_settings_for, running_app, settings_for
from tests.helpers import wait_until

FLEET = "/api/runtimes/fleet"


def _write(path: str) -> list[dict[str, str]]:
    return [{"path": path, "mode": "write"}]


@pytest.fixture
async def client(namespace: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings_for(namespace)) as (_app, client):
        yield client


async def _names(client: httpx.AsyncClient, runtime: str = BI) -> list[str]:
    listing = (await client.get(f"{runtime}/workers")).json()["workers"]
    return [w["display_name"] for w in listing]


async def _batch(client: httpx.AsyncClient, items: list[dict[str, Any]], runtime: str = BI) -> Any:
    return await client.post(f"{runtime}/workers:batch", json={"workers": items})


async def test_a_batch_answers_each_worker_in_order(client: httpx.AsyncClient) -> None:
    items: list[dict[str, Any]] = [{"display_name": f"b{n}"} for n in range(20)]
    items[3]["scope"] = _write("/repo/a")
    items[4]["scope"] = _write("/repo/b")
    response = await _batch(client, items)
    assert response.status_code == 201, response.text
    made = response.json()["workers"]
    assert [w["display_name"] for w in made] == [i["display_name"] for i in items]
    assert len({w["worker_id"] for w in made}) == 20
    assert made[3]["scope"] == _write("/repo/a") and made[0]["scope"] == []
    for worker in made:  # the embedded runtime hosts each at once, as a single create does
        detail = (await client.get(f"{BI}/workers/{worker['worker_id']}")).json()
        assert detail["state"] == worker["state"] == "idle"
        assert detail["cursor"] == worker["cursor"]
    assert await _names(client) == [i["display_name"] for i in items]
    # The claims are held: a later create overlapping one is refused.
    refused = await client.post(
        f"{BI}/workers", json={"display_name": "late", "scope": _write("/repo/a/x")}
    )
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "scope_conflict"


@pytest.mark.parametrize(
    ("bad", "code", "where"),
    [
        ({"display_name": ""}, "invalid_input", "body.workers.2.display_name"),
        ({"display_name": "x", "profile": "nope"}, "invalid_input", "workers.2: unknown profile"),
        ({"display_name": "x", "extra": 1}, "invalid_input", "body.workers.2.extra"),
        (
            {"display_name": "x", "delegated_from": "01a237bd-ff25-71b0-b257-8fcd7ca7543e"},
            "worker_not_found",
            "workers.2: ",
        ),
    ],
)
async def test_a_bad_item_names_its_index_and_creates_nothing(
    client: httpx.AsyncClient, bad: dict[str, Any], code: str, where: str
) -> None:
    items: list[dict[str, Any]] = [
        {"display_name": "ok0"},
        {"display_name": "ok1", "scope": _write("/s")},
        bad,
    ]
    response = await _batch(client, items)
    error = response.json()["error"]
    assert (error["code"], response.status_code) in {(code, 422), (code, 404)}, response.text
    assert where in error["message"]
    assert await _names(client) == []
    # Nothing claimed either: the scope the first item asked for is free.
    assert await client.post(f"{BI}/workers", json={"display_name": "s", "scope": _write("/s")})
    assert await _names(client) == ["s"]


async def test_batch_bounds(client: httpx.AsyncClient) -> None:
    empty = await _batch(client, [])
    assert empty.status_code == 422 and "body.workers" in empty.json()["error"]["message"]
    many = await _batch(client, [{"display_name": f"n{n}"} for n in range(MAX_CREATE_BATCH + 1)])
    assert many.status_code == 422, many.text
    big = await _batch(client, [{"display_name": "x" * 60} for _ in range(MAX_CREATE_BATCH)] * 5)
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
    assert await _names(client) == []


async def test_scope_conflicts_inside_the_batch_create_nothing(client: httpx.AsyncClient) -> None:
    items = [
        {"display_name": "a", "scope": _write("/repo")},
        {"display_name": "b", "scope": _write("/other")},
        {"display_name": "c", "scope": _write("/repo/sub")},
    ]
    response = await _batch(client, items)
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "scope_conflict" and error["message"].startswith("workers.2: ")
    assert "workers.0" in error["message"]
    assert await _names(client) == []


async def test_a_live_workers_scope_refuses_the_whole_batch(client: httpx.AsyncClient) -> None:
    live = await client.post(f"{BI}/workers", json={"display_name": "live", "scope": _write("/x")})
    parent = live.json()["worker_id"]
    items = [
        {"display_name": "a", "scope": _write("/a")},
        {"display_name": "b", "scope": _write("/x/y")},
    ]
    response = await _batch(client, items)
    assert response.status_code == 409 and response.json()["error"]["code"] == "scope_conflict"
    assert response.json()["error"]["message"].startswith("workers.1: ")
    assert await _names(client) == ["live"]
    # The first item's claim was given back: the same batch without the conflict goes in,
    # with children of the live Worker sharing its scope (one delegation group).
    children = [
        {"display_name": "a", "scope": _write("/a")},
        {"display_name": "k1", "scope": _write("/x/y"), "delegated_from": parent},
        {"display_name": "k2", "scope": _write("/x/y"), "delegated_from": parent},
    ]
    again = await _batch(client, children)
    assert again.status_code == 201, again.text
    assert [w["delegated_from"] for w in again.json()["workers"]] == [None, parent, parent]


# -- on a fleet ----------------------------------------------------------------------------------


@pytest.fixture
def fleet_settings(namespace: str, redis_url: str) -> Settings:
    return fleet_settings_for(namespace, redis_url, capacity=60, capacity_wait_s=0.2)


@pytest.fixture
async def fleet(fleet_settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with running_app(fleet_settings) as pair:
        yield pair


async def test_a_fleet_batch_is_hosted_and_answered(
    fleet: tuple[FastAPI, httpx.AsyncClient], fleet_settings: Settings
) -> None:
    _app, client = fleet
    member = Member(fleet_settings)
    await member.start()
    try:

        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await wait_until(ready, what="an alive member")
        items = [{"display_name": f"f{n}"} for n in range(50)]
        response = await _batch(client, items, FLEET)
        assert response.status_code == 201, response.text
        made = response.json()["workers"]
        assert [(w["display_name"], w["kind"]) for w in made] == [
            (f"f{n}", "fleet") for n in range(50)
        ]
        assert await _names(client, FLEET) == [f"f{n}" for n in range(50)]

        async def all_hosted() -> bool:
            listing = (await client.get(f"{FLEET}/workers")).json()["workers"]
            return all(w["state"] == "idle" for w in listing)

        await wait_until(all_hosted, what="every Worker of the batch hosted")
        worker = made[-1]["worker_id"]
        sent = await client.post(
            f"{FLEET}/workers/{worker}/inputs", json={"text": "hi", "wait_s": 10}
        )
        assert sent.status_code == 200 and sent.json()["text"] == "You said: hi", sent.text

        # The refusal is judged on the gateway's view of the members' heartbeats: wait until a
        # heartbeat counts all 50 and the admission view was read after it (a view older than
        # that heartbeat may still show places the batch's hosting has taken since).
        async def counted() -> bool:
            members: list[dict[str, Any]] = (await client.get(f"{FLEET}/members")).json()["members"]
            return sum(int(m["hosted"]) for m in members if m["alive"]) == 50

        await wait_until(counted, what="a heartbeat counting the 50 hosted")
        gateway: Gateway = _app.state.gateway
        admission = gateway.runtimes().get("fleet").admission
        assert admission is not None
        seen_at = monotonic_s()

        async def view_after() -> bool:
            return admission._read_at > seen_at

        await wait_until(view_after, what="the admission view read after that heartbeat")
        # 50 of 60 places taken: a batch of 11 has no room as a whole and creates nothing.
        full = await _batch(client, [{"display_name": f"g{n}"} for n in range(11)], FLEET)
        assert full.status_code == 503, full.text
        assert full.json()["error"]["code"] == "capacity_exhausted"
        assert len(await _names(client, FLEET)) == 50
    finally:
        await member.stop()
