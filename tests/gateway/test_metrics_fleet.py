"""`/metrics` fleet figures on a real Redis with in-process members: the prometheus_client parser
accepts the page, token counters equal the usage projection after a few runs, Workers, queues,
members, lease takeovers and run errors are counted, and no label holds a worker or input id."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from runtime_worker.member import Member
from runtime_worker.profiles import Profile
from runtime_worker.providers.base import Provider, StreamItem, TurnRequest
from runtime_worker.providers.echo import EchoProvider
from shared.errors import ProviderError
from shared.settings import Settings
from tests.gateway.support import (
    events_until,
    finished,
    fleet_settings_for,
    running_app,
)
from tests.helpers import wait_until

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana-dashboard.json"
FLEET = "/api/runtimes/fleet"
BI = "/api/runtimes/backend-internal"


FAIL_MARK = "please fail this turn"


class FlakyEcho(EchoProvider):
    """The echo provider, failing before its first token (as an unreachable model does) on
    the turns whose text asks for it: a fake of this test's own, not a hook of the real one."""

    name = "flaky-echo"

    async def stream(self, request: TurnRequest) -> AsyncIterator[StreamItem]:
        if request.messages[-1].content == FAIL_MARK:
            raise ProviderError("the model is down", retryable=False)
        async for item in super().stream(request):
            yield item


def providers(_profile: Profile) -> Provider:
    return FlakyEcho()


@pytest.fixture
def fleet_settings(namespace: str, redis_url: str) -> Settings:
    return fleet_settings_for(namespace, redis_url)


@pytest.fixture
async def fleet(fleet_settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with running_app(fleet_settings) as pair:
        yield pair


Families = dict[str, list[tuple[dict[str, str], float]]]


async def scrape(client: httpx.AsyncClient) -> Families:
    response = await client.get("/metrics")
    assert response.status_code == 200
    families: Families = {}
    for family in text_string_to_metric_families(response.text):  # fails on a malformed page
        for sample in family.samples:
            families.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return families


def value(families: Families, name: str, **labels: str) -> float:
    found = [v for got, v in families.get(name, []) if got == labels]
    assert len(found) == 1, f"{name}{labels}: {families.get(name)}"
    return found[0]


async def run(client: httpx.AsyncClient, worker: str, text: str) -> None:
    sent = (await client.post(f"{worker}/inputs", json={"text": text})).json()
    await events_until(client, f"{worker}/events", sent["cursor"], finished(sent["input_id"]))


async def create(client: httpx.AsyncClient, base: str, name: str, **extra: Any) -> str:
    response = await client.post(f"{base}/workers", json={"display_name": name, **extra})
    assert response.status_code == 201, response.text
    return f"{base}/workers/{response.json()['worker_id']}"


async def test_fleet_figures_match_the_usage_projection(
    fleet: tuple[FastAPI, httpx.AsyncClient], fleet_settings: Settings
) -> None:
    _app, client = fleet
    first = Member(
        fleet_settings.model_copy(update={"member_id": "m1"}), provider_factory=providers
    )
    await first.start()
    second: Member | None = None
    try:
        chat = await create(client, FLEET, "chat")
        helper = await create(client, FLEET, "helper", profile="companion")
        local = await create(client, BI, "local")
        for text in ("one small turn", "a second, somewhat longer turn of text", "three"):
            await run(client, chat, text)
        await run(client, helper, FAIL_MARK)
        await run(client, helper, "and this one answers")
        await run(client, local, "embedded tokens count too")

        families = await scrape(client)
        for runtime, workers in (("fleet", [chat, helper]), ("backend-internal", [local])):
            details = [(await client.get(w)).json() for w in workers]
            for direction in ("input", "output"):
                by_profile: dict[str, int] = {}
                for detail in details:
                    tokens = detail["usage"][f"{direction}_tokens"]
                    by_profile[detail["profile"]] = by_profile.get(detail["profile"], 0) + tokens
                for profile, tokens in by_profile.items():
                    labels = {"runtime": runtime, "profile": profile, "direction": direction}
                    assert value(families, "yoi_tokens_total", **labels) == tokens
            usage = (await client.get(f"/api/runtimes/{runtime}")).json()["usage"]
            measured = sum(
                v for got, v in families["yoi_tokens_total"] if got["runtime"] == runtime
            )
            assert measured == usage["input_tokens"] + usage["output_tokens"] > 0

        assert value(families, "yoi_workers", runtime="fleet", state="idle") == 2
        assert value(families, "yoi_workers", runtime="fleet", state="running") == 0
        assert value(families, "yoi_queued_inputs", runtime="fleet") == 0
        assert value(families, "yoi_members", runtime="fleet", state="alive") == 1
        assert value(families, "yoi_members", runtime="fleet", state="dead") == 0
        assert value(families, "yoi_run_errors_total", runtime="fleet", code="provider_error") == 1
        assert value(families, "yoi_dead_letters_total", runtime="fleet") == 0
        assert value(families, "yoi_lease_takeovers_total", runtime="fleet") == 0

        # Another member takes both Workers over when the first leaves: two new epochs.
        second = Member(
            fleet_settings.model_copy(update={"member_id": "m2"}), provider_factory=providers
        )
        await second.start()
        await first.stop()

        async def taken_over() -> bool:
            figures = await scrape(client)
            return value(figures, "yoi_lease_takeovers_total", runtime="fleet") == 2

        await wait_until(taken_over, timeout_s=15, what="both Workers on the second member")

        # Bounded labels: no worker, input or member id in any label value.
        ids = {w.rsplit("/", 1)[1] for w in (chat, helper, local)} | {"m1", "m2"}
        final = await scrape(client)
        for samples in final.values():
            for labels, _ in samples:
                assert not ids & set(labels.values()), labels

        # The Grafana dashboard in docs/ reads only series this page has.
        dashboard = json.loads(DASHBOARD.read_text())
        exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
        wanted = {name for expr in exprs for name in re.findall(r"\byoi_[a-z_]+", expr)}
        page = (await client.get("/metrics")).text
        declared = set(re.findall(r"^# TYPE (\S+) ", page, flags=re.MULTILINE))
        series = set(final) | declared | {f"{name}_total" for name in declared}
        assert wanted - series == set()
    finally:
        await first.stop()
        if second is not None:
            await second.stop()
