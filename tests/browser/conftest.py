"""Browser fixtures: a real gateway process over a real socket, and headless Chromium driving it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from tests.browser.chromium import CHROMIUM_ARGS, chromium_path
from tests.browser.gateway_process import Gateway, running_gateway

EXPECT_TIMEOUT_MS = 15_000

expect.set_options(timeout=EXPECT_TIMEOUT_MS)


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        driver.selectors.set_test_id_attribute("data-testid")
        yield driver


@pytest.fixture(scope="module")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    executable = chromium_path()
    if executable is None:
        pytest.fail("no Chromium: `apt-get install -y chromium` (or set YOI_CHROMIUM)")
    browser = playwright_driver.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    """Factory: `start_gateway(token=...)` runs a gateway; every one is stopped at teardown."""
    with ExitStack() as stack:

        def start(
            *, token: str | None = None, echo_delay_ms: int = 40, env: dict[str, str] | None = None
        ) -> Gateway:
            return stack.enter_context(
                running_gateway(tmp_path, token=token, echo_delay_ms=echo_delay_ms, env=env)
            )

        yield start


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway shared by the tests that look only at their own, uniquely worded turns."""
    with running_gateway(tmp_path_factory.mktemp("gateway")) as shared:
        yield shared


@pytest.fixture
def fresh_gateway(start_gateway: Callable[..., Gateway]) -> Gateway:
    """A gateway of the test's own: its Companion starts with an empty transcript."""
    return start_gateway()


@pytest.fixture
def page(browser: Browser, start_gateway: Callable[..., Gateway]) -> Iterator[Page]:
    """A fresh context (own sessionStorage) at 1200x800; an uncaught page error fails the test.

    It depends on `start_gateway` so that it closes, streams and all, before any gateway stops.
    """
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"
