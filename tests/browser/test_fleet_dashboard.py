"""The fleet dashboard (`/fleet`) in headless Chromium, against a real gateway process and real
runtime processes on the real Redis: members and Workers appear and change as processes come and
go, and any fleet Worker opens in the console with streaming, cancel and stop."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.gateway_process import Gateway
from tests.fleet.conftest import delete_namespace
from tests.fleet.support import FAST_ENV, Fleet

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ANSWERS = '[data-testid="turn"][data-role="assistant"]'
ECHO_DELAY_MS = "40"  # word by word, slow enough to watch and cancel


@pytest.fixture
def fleet(redis_url: str, namespace: str, tmp_path: Path) -> Iterator[Fleet]:
    made = Fleet(redis_url, namespace, tmp_path)
    yield made
    made.stop_all()
    delete_namespace(redis_url, namespace)


@pytest.fixture
def fleet_gateway(
    fleet: Fleet, start_gateway: Callable[..., Gateway], redis_url: str, namespace: str
) -> Gateway:
    """A gateway serving the fleet runtime `fleet`; one member runs first, so it is ready."""
    fleet.start("m1", echo_delay_ms=ECHO_DELAY_MS)
    env = {
        **FAST_ENV,
        "YOI_REDIS_URL": redis_url,
        "YOI_NAMESPACE": namespace,
        "YOI_FLEETS": "fleet",
    }
    return start_gateway(env=env)


def create_worker(gateway: Gateway, name: str) -> str:
    with gateway.client() as client:
        response = client.post("/api/runtimes/fleet/workers", json={"display_name": name})
    assert response.status_code == 201, response.text
    worker_id: str = response.json()["worker_id"]
    return worker_id


def test_members_and_workers_follow_processes_added_and_killed(
    page: Page, fleet: Fleet, fleet_gateway: Gateway
) -> None:
    page.goto(fleet_gateway.url + "/fleet")
    expect(page.locator('[data-testid="runtime-row"][data-runtime-id="fleet"]')).to_contain_text(
        "ready"
    )
    first = page.locator('[data-testid="member-row"][data-member-id="m1"]')
    expect(first).to_have_attribute("data-state", "alive")

    workers = [create_worker(fleet_gateway, f"dash{i}") for i in range(3)]
    for worker_id in workers:
        row = page.locator(f'[data-testid="worker-row"][data-worker-id="{worker_id}"]')
        expect(row).to_have_attribute("data-state", "idle")
        expect(row.get_by_test_id("worker-host")).to_have_text("m1")
    expect(first.get_by_test_id("member-hosted")).to_have_text("3")

    fleet.start("m2", echo_delay_ms=ECHO_DELAY_MS)
    second = page.locator('[data-testid="member-row"][data-member-id="m2"]')
    expect(second).to_have_attribute("data-state", "alive")

    fleet.members["m1"].signal(signal.SIGKILL)
    expect(first).to_have_attribute("data-state", "dead")
    for worker_id in workers:  # the survivor took every Worker of the dead one
        row = page.locator(f'[data-testid="worker-row"][data-worker-id="{worker_id}"]')
        expect(row.get_by_test_id("worker-host")).to_have_text("m2")

    # The filter narrows the list to what matches, and shows every row again when cleared.
    page.get_by_test_id("worker-filter").fill("dash1")
    expect(page.get_by_test_id("worker-row")).to_have_count(1)
    page.get_by_test_id("worker-filter").fill("")
    expect(page.get_by_test_id("worker-row")).to_have_count(3)


def test_a_fleet_worker_opens_in_the_console_streams_cancels_and_stops(
    page: Page, fleet_gateway: Gateway
) -> None:
    worker_id = create_worker(fleet_gateway, "opened")
    page.goto(fleet_gateway.url + "/fleet")
    page.locator(f'[data-testid="worker-row"][data-worker-id="{worker_id}"]').get_by_test_id(
        "worker-open"
    ).click()
    expect(page.get_by_test_id("companion-ref")).to_have_text("opened@fleet")
    expect(page.get_by_test_id("status")).to_have_attribute("data-status", "idle")

    box = page.get_by_test_id("composer-input")
    box.fill("first fleet answer please")
    box.press("Enter")
    answer = page.locator(ANSWERS).last
    expect(answer).to_have_attribute("data-result", "finished")
    expect(answer.get_by_test_id("turn-text")).to_contain_text("first fleet answer please")

    long_text = " ".join(["long", *(f"w{i}" for i in range(120)), "long-end"])
    box.fill(long_text)
    box.press("Enter")
    answer = page.locator(ANSWERS).last
    expect(answer).to_have_attribute("data-result", "streaming")
    expect(answer.get_by_test_id("turn-text")).to_contain_text("long")
    page.get_by_test_id("cancel").click()
    expect(answer).to_have_attribute("data-result", "cancelled")
    assert "long-end" not in (answer.get_by_test_id("turn-text").text_content() or "")
    expect(page.get_by_test_id("status")).to_have_attribute("data-status", "idle")

    page.get_by_test_id("stop").click()
    expect(page.get_by_test_id("status")).to_have_attribute("data-status", "stopped")
    expect(page.get_by_test_id("send")).to_be_disabled()
    detail = httpx.get(f"{fleet_gateway.url}/api/runtimes/fleet/workers/{worker_id}", timeout=10)
    assert detail.json()["state"] in {"stopping", "stopped"}


def test_dashboard_fits_a_phone(browser: Browser, fleet_gateway: Gateway) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740})
    try:
        page = context.new_page()
        create_worker(fleet_gateway, "phone")
        page.goto(fleet_gateway.url + "/fleet")
        expect(page.get_by_test_id("worker-row")).to_have_count(1)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the page scrolls sideways by {overflow}px at phone width"
    finally:
        context.close()
