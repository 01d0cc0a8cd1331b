"""Where the browser suite finds Chromium, and how it starts it.

Chromium is the system's (`apt-get install chromium`, see `.ci/install-system`): Playwright's own
browser builds are not downloadable everywhere this suite runs. `YOI_CHROMIUM` names another.
"""

from __future__ import annotations

import os
import shutil

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("YOI_CHROMIUM"), "/usr/bin/chromium", "chromium"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None
