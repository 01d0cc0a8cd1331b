"""The echo provider: verbatim, word-sized pieces, paced by its delay, and its failure hooks."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime_worker.providers import (
    ChatMessage,
    EchoProvider,
    TextChunk,
    TurnRequest,
    UsageChunk,
    make_provider,
)
from runtime_worker.providers.base import StreamItem
from shared.errors import InvalidInput, ProviderError
from shared.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]


def _request(text: str, *history: ChatMessage) -> TurnRequest:
    messages = [*history, ChatMessage("user", text)]
    return TurnRequest(messages=messages, model="echo", max_output_tokens=256)


async def _collect(provider: EchoProvider, request: TurnRequest) -> list[StreamItem]:
    return [item async for item in provider.stream(request)]


def _texts(items: list[StreamItem]) -> list[str]:
    return [item.text for item in items if isinstance(item, TextChunk)]


async def test_answer_holds_the_last_user_text_verbatim() -> None:
    text = "  spaced\tout,\n\nwith  «unicode» and punctuation!  "
    history = (
        ChatMessage("system", "be brief"),
        ChatMessage("user", "an older question"),
        ChatMessage("assistant", "an older answer"),
    )
    items = await _collect(EchoProvider(0), _request(text, *history))
    answer = "".join(_texts(items))
    assert answer == f"You said: {text}"
    assert "older" not in answer


async def test_pieces_are_at_most_one_word() -> None:
    pieces = _texts(await _collect(EchoProvider(0), _request("one two  three\nfour")))
    assert pieces == ["You ", "said: ", "one ", "two  ", "three\n", "four"]
    for piece in pieces:
        assert re.fullmatch(r"\S+\s*", piece), piece


async def test_usage_counts_prompt_words_and_pieces_last() -> None:
    request = _request("three little words", ChatMessage("system", "you echo"))
    items = await _collect(EchoProvider(0), request)
    assert isinstance(items[-1], UsageChunk)
    assert [item for item in items if isinstance(item, UsageChunk)] == [items[-1]]
    assert items[-1] == UsageChunk(input_tokens=5, output_tokens=len(items) - 1)


async def test_delay_separates_pieces() -> None:
    delay_ms = 40
    started = time.monotonic()
    pieces = _texts(await _collect(EchoProvider(delay_ms), _request("a b c d")))
    elapsed_s = time.monotonic() - started
    assert len(pieces) == 6
    assert elapsed_s >= (len(pieces) - 1) * delay_ms / 1000 - 0.002


async def test_slow_hook_paces_at_least_200ms() -> None:
    started = time.monotonic()
    pieces = _texts(await _collect(EchoProvider(0), _request("/slow")))
    assert pieces == ["You ", "said: ", "/slow"]
    assert time.monotonic() - started >= 2 * 0.2 - 0.002


async def test_fail_hook_raises_before_any_piece() -> None:
    received: list[StreamItem] = []
    with pytest.raises(ProviderError) as caught:
        async for item in EchoProvider(0).stream(_request("/fail please")):
            received.append(item)
    assert received == []
    assert caught.value.retryable is False
    assert caught.value.message == "echo provider asked to fail"


async def test_fail_mid_hook_raises_after_one_piece() -> None:
    received: list[StreamItem] = []
    with pytest.raises(ProviderError) as caught:
        async for item in EchoProvider(0).stream(_request("/fail-mid now")):
            received.append(item)
    assert received == [TextChunk("You ")]
    assert caught.value.retryable is False


def test_crash_hook_exits_the_process_with_70() -> None:
    script = (
        "import asyncio\n"
        "from runtime_worker.providers import ChatMessage, EchoProvider, TurnRequest\n"
        "request = TurnRequest([ChatMessage('user', '/crash')], 'echo', 16)\n"
        "async def main():\n"
        "    async for _ in EchoProvider(0).stream(request):\n"
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


def test_factory_builds_echo_with_the_configured_delay() -> None:
    provider = make_provider("echo", Settings(echo_delay_ms=7))
    assert isinstance(provider, EchoProvider)
    assert provider.delay_ms == 7


def test_factory_rejects_unknown_names() -> None:
    with pytest.raises(InvalidInput, match="unknown provider 'gpt-magic'"):
        make_provider("gpt-magic", Settings())
