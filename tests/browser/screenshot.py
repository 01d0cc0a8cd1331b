"""Takes `docs/console.png`: the console mid-answer, against a real gateway.

.venv/bin/python -m tests.browser.screenshot [--out PATH] [--dark]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from tests.browser.chromium import CHROMIUM_ARGS, chromium_path
from tests.browser.gateway_process import running_gateway

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "docs" / "console.png"
TIMEOUT_MS = 20_000
SHOT_ENV = {"YOI_WORKSPACE": "yoi-fleet"}

FIRST = "Hello! Which workspace are you looking after today?"
SECOND = (
    "How do I follow your events from a cursor?\n\n"
    "```\n"
    "curl -N -H 'Authorization: Bearer $TOKEN' \\\n"
    "  'http://127.0.0.1:8000/api/companion/events/stream?after=CURSOR'\n"
    "```\n\n"
    "Keep it **short**, and say what `Last-Event-ID` does when the stream drops."
)


def converse(page: Page, url: str) -> None:
    page.goto(url)
    status = page.get_by_test_id("status")
    expect(status).to_have_attribute("data-status", "idle", timeout=TIMEOUT_MS)
    box = page.get_by_test_id("composer-input")
    box.fill(FIRST)
    box.press("Enter")
    expect(status).to_have_attribute("data-status", "generating", timeout=TIMEOUT_MS)
    expect(status).to_have_attribute("data-status", "idle", timeout=TIMEOUT_MS)
    box.fill(SECOND)
    box.press("Enter")
    # Mid-answer: the code block and the bold word are in, the rest has not arrived yet.
    page.wait_for_function(
        """() => {
          const turns = document.querySelectorAll('[data-role="assistant"]');
          const turn = turns[turns.length - 1];
          return turns.length === 2 && turn.dataset.result === "streaming" &&
            turn.textContent.includes("Keep it short, and say") &&
            !turn.textContent.includes("Last-Event-ID");
        }""",
        polling="raf",
        timeout=TIMEOUT_MS,
    )
    box.fill("Can the fleet keep")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--dark", action="store_true", help="prefers-color-scheme: dark")
    args = parser.parse_args(argv)
    executable = chromium_path()
    if executable is None:
        print("no Chromium: apt-get install -y chromium (or set YOI_CHROMIUM)", file=sys.stderr)
        return 1
    with (
        tempfile.TemporaryDirectory(prefix="yoi-shot-") as workdir,
        running_gateway(Path(workdir), echo_delay_ms=60, env=SHOT_ENV) as gateway,
        sync_playwright() as driver,
    ):
        driver.selectors.set_test_id_attribute("data-testid")
        browser = driver.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(
                viewport={"width": 1200, "height": 800},
                color_scheme="dark" if args.dark else "light",
            )
            converse(page, gateway.url + "/")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out))
        finally:
            browser.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
