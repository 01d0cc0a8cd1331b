"""The console across a gateway restart: it reconciles with the server and never stays on
"Generating…" with nothing running; a message sent afterwards is answered."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.gateway_process import Gateway, running_gateway
from tests.browser.test_console import (
    answer_text,
    last_answer,
    message,
    open_console,
    send,
    snapshot,
    wait_idle,
    wait_streaming,
)
from tests.helpers import free_port, wait_until_sync

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@contextmanager
def gateway_on(port: int, workdir: Path, data_dir: str, delay_ms: int) -> Iterator[Gateway]:
    with running_gateway(
        workdir, echo_delay_ms=delay_ms, env={"YOI_DATA_DIR": data_dir}, port=port
    ) as gateway:
        yield gateway


def killed(gateway: Gateway) -> None:
    gateway.process.send_signal(signal.SIGKILL)
    gateway.process.wait(timeout=20)


def answer_after_restart_is_answered(page: Page) -> None:
    send(page, "after the restart")
    wait_idle(page)
    answer = last_answer(page)
    expect(answer).to_have_attribute("data-result", "finished")
    expect(answer.get_by_test_id("turn-text")).to_have_text("You said: after the restart")


def test_restart_mid_answer_streams_on_and_ends_with_the_outcome(
    page: Page, tmp_path: Path
) -> None:
    port, data_dir = free_port(), str(tmp_path / "data")
    text = message("restart", 40)
    with gateway_on(port, tmp_path, data_dir, delay_ms=100) as first:
        open_console(page, first)
        send(page, text)
        wait_streaming(page, 20)
        killed(first)
    expect(page.get_by_test_id("status")).to_have_attribute("data-status", "reconnecting")

    with gateway_on(port, tmp_path, data_dir, delay_ms=5):
        answer = last_answer(page)
        expect(answer).to_have_attribute("data-result", "finished")
        wait_idle(page)
        expect(page.get_by_test_id("cancel")).to_be_hidden()
        # The answer ran again as attempt 2, its abandoned text dropped: the whole answer, once.
        assert answer_text(answer).count("restart-end") == 1
        assert snapshot(page)["runs"][-1]["attempt"] == 2
        answer_after_restart_is_answered(page)


def test_restart_that_lost_the_companion_leaves_generating(page: Page, tmp_path: Path) -> None:
    port = free_port()
    with gateway_on(port, tmp_path, "", delay_ms=100) as first:  # in memory: gone when killed
        open_console(page, first)
        send(page, message("lost", 40))
        wait_streaming(page, 20)
        killed(first)
    expect(page.get_by_test_id("status")).to_have_attribute("data-status", "reconnecting")

    with gateway_on(port, tmp_path, "", delay_ms=5):
        wait_idle(page)
        expect(page.get_by_test_id("cancel")).to_be_hidden()
        assert snapshot(page)["reconciles"] >= 1
        answer_after_restart_is_answered(page)


def test_run_that_ended_while_the_gateway_stopped_shows_its_outcome(
    page: Page, tmp_path: Path
) -> None:
    port, data_dir = free_port(), str(tmp_path / "data")
    text = message("drained", 12)
    with gateway_on(port, tmp_path, data_dir, delay_ms=150) as first:
        open_console(page, first)
        send(page, text)
        wait_streaming(page, 1)
        # A graceful stop: the streams end at once, the run finishes within the drain grace.
        first.process.send_signal(signal.SIGTERM)
        assert first.process.wait(timeout=30) == 0
    expect(page.get_by_test_id("status")).to_have_attribute("data-status", "reconnecting")

    with gateway_on(port, tmp_path, data_dir, delay_ms=5):
        answer = last_answer(page)
        expect(answer).to_have_attribute("data-result", "finished")
        wait_idle(page)
        assert answer_text(answer).count("drained-end") == 1
        answer_after_restart_is_answered(page)


def test_cancel_ends_in_the_state_the_server_has(page: Page, tmp_path: Path) -> None:
    port, data_dir = free_port(), str(tmp_path / "data")
    with gateway_on(port, tmp_path, data_dir, delay_ms=100) as first:
        open_console(page, first)
        send(page, message("cancelled", 40))
        wait_streaming(page, 20)
        # The stream stays away, so only the cancel's answer can tell the console the news.
        page.route("**/events/stream**", lambda route: route.abort())
        killed(first)

    with gateway_on(port, tmp_path, data_dir, delay_ms=0) as second:
        with second.client() as client:
            wait_until_sync(
                lambda: client.get("/api/companion").json()["state"] == "idle",
                what="the rerun to finish on the server",
            )
        expect(page.get_by_test_id("cancel")).to_be_visible()  # the console still thinks so
        page.get_by_test_id("cancel").click()
        expect(page.get_by_test_id("cancel")).to_be_hidden()
        expect(last_answer(page)).to_have_attribute("data-result", "finished")
        assert snapshot(page)["runs"] == []  # reloaded from the transcript: nothing running
        page.unroute("**/events/stream**")
        wait_idle(page)  # the stream is back
        answer_after_restart_is_answered(page)
