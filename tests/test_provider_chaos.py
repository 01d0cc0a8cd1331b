"""The chaos provider: answers like echo, and honours its failure hooks (fault tests only)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime_worker.providers import ChaosProvider, ChatMessage, TextChunk, TurnRequest
from runtime_worker.providers.base import StreamItem
from shared.errors import ProviderError

REPO_ROOT = Path(__file__).resolve().parents[1]


def _request(text: str) -> TurnRequest:
    return TurnRequest(messages=[ChatMessage("user", text)], model="chaos", max_output_tokens=256)


async def _collect(provider: ChaosProvider, request: TurnRequest) -> list[StreamItem]:
    return [item async for item in provider.stream(request)]


def _texts(items: list[StreamItem]) -> list[str]:
    return [item.text for item in items if isinstance(item, TextChunk)]


async def test_plain_text_is_echoed() -> None:
    assert "".join(_texts(await _collect(ChaosProvider(0), _request("a b")))) == "You said: a b"


async def test_slow_hook_paces_at_least_200ms() -> None:
    started = time.monotonic()
    pieces = _texts(await _collect(ChaosProvider(0), _request("/slow")))
    assert pieces == ["You ", "said: ", "/slow"]
    assert time.monotonic() - started >= 2 * 0.2 - 0.002


async def test_fail_hook_raises_before_any_piece() -> None:
    received: list[StreamItem] = []
    with pytest.raises(ProviderError) as caught:
        async for item in ChaosProvider(0).stream(_request("/fail please")):
            received.append(item)
    assert received == []
    assert caught.value.retryable is False
    assert caught.value.message == "chaos provider asked to fail"


async def test_fail_mid_hook_raises_after_one_piece() -> None:
    received: list[StreamItem] = []
    with pytest.raises(ProviderError) as caught:
        async for item in ChaosProvider(0).stream(_request("/fail-mid now")):
            received.append(item)
    assert received == [TextChunk("You ")]
    assert caught.value.retryable is False


@pytest.mark.slow  # a child Python process
def test_crash_hook_exits_the_process_with_70() -> None:
    script = (
        "import asyncio\n"
        "from runtime_worker.providers import ChaosProvider, ChatMessage, TurnRequest\n"
        "request = TurnRequest([ChatMessage('user', '/crash')], 'chaos', 16)\n"
        "async def main():\n"
        "    async for _ in ChaosProvider(0).stream(request):\n"
        "        print('streamed', flush=True)\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 70, done.stderr
    assert "streamed" not in done.stdout
