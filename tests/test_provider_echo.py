"""The echo provider: verbatim, word-sized pieces, paced by its delay; hook texts are just text."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from runtime_worker.providers import (
    ChaosProvider,
    ChatMessage,
    EchoProvider,
    TextChunk,
    TurnRequest,
    UsageChunk,
    make_provider,
)
from runtime_worker.providers.base import StreamItem
from shared.errors import InvalidInput
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


@pytest.mark.parametrize("text", ["/crash", "/fail please", "/fail-mid now", "/slow", " /crash"])
async def test_hook_texts_are_just_text(text: str) -> None:
    started = time.monotonic()
    items = await _collect(EchoProvider(0), _request(text))
    assert "".join(_texts(items)) == f"You said: {text}"
    assert time.monotonic() - started < 0.2  # no `/slow` pacing either


def test_factory_builds_echo_with_the_configured_delay() -> None:
    provider = make_provider("echo", Settings(echo_delay_ms=7))
    assert isinstance(provider, EchoProvider)
    assert provider.delay_ms == 7


def test_factory_builds_chaos_only_by_name() -> None:
    assert type(make_provider("echo", Settings())) is EchoProvider
    chaos = make_provider("chaos", Settings(echo_delay_ms=3))
    assert isinstance(chaos, ChaosProvider) and chaos.delay_ms == 3
    assert Settings().provider == "echo"


def test_factory_rejects_unknown_names() -> None:
    with pytest.raises(InvalidInput, match="unknown provider 'gpt-magic'"):
        make_provider("gpt-magic", Settings())
