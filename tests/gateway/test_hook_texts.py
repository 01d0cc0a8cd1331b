"""With every default, a text that looks like a chaos hook is just text, in a real gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.gateway_process import running_gateway
from tests.helpers import wait_until_sync

pytestmark = pytest.mark.slow

HOOK_TEXTS = ("/crash", "/fail please", "/fail-mid now", "/slow down")


def _events_until_finished(client: httpx.Client, url: str, after: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def finished() -> bool:
        seen[:] = client.get(url, params={"after": after}).json()["events"]
        return any(e["type"] == "run_finished" for e in seen)

    wait_until_sync(finished, timeout_s=15, what="the answer")
    return seen


def test_a_real_gateway_answers_hook_texts_as_text(tmp_path: Path) -> None:
    with running_gateway(tmp_path, echo_delay_ms=0) as gateway, gateway.client() as client:
        for text in HOOK_TEXTS:
            sent = client.post("/api/companion/messages", json={"text": text})
            assert sent.status_code == 202, sent.text
            worker_id = client.get("/api/companion").json()["worker_id"]
            events_url = f"/api/runtimes/backend-internal/workers/{worker_id}/events"
            seen = _events_until_finished(client, events_url, sent.json()["cursor"])
            assert [e["result"] for e in seen if e["type"] == "run_finished"] == ["finished"]
            assert [e["text"] for e in seen if e["type"] == "text_done"] == [f"You said: {text}"]
        assert gateway.process.poll() is None, gateway.log_tail()
