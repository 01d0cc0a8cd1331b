"""The offline `echo` provider: deterministic answers so everything runs with no network or key.

The answer is `"You said: <last user text>"`, streamed one word (plus its trailing whitespace) at
a time with `delay_ms` between pieces, then a `UsageChunk` (input: words in all prompt messages;
output: number of pieces). `max_output_tokens` is ignored: the answer always holds the user's
text verbatim.

User texts starting with a hook drive failure tests:

| prefix      | behaviour                                                              |
| ----------- | ---------------------------------------------------------------------- |
| `/fail-mid` | one piece, then `ProviderError` (not retryable)                        |
| `/fail`     | `ProviderError` (not retryable) before any piece                       |
| `/crash`    | `os._exit(70)`: the host process dies, as if the input killed it       |
| `/slow`     | every pause is at least 200 ms                                         |
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator

from runtime_worker.providers.base import Provider, StreamItem, TextChunk, TurnRequest, UsageChunk
from shared.errors import ProviderError

CRASH_EXIT_CODE = 70
SLOW_DELAY_MS = 200

_PIECE = re.compile(r"\S+\s*")


def split_pieces(answer: str) -> list[str]:
    """Each word with its trailing whitespace, so the pieces join back to `answer` exactly."""
    lead = len(answer) - len(answer.lstrip())
    pieces: list[str] = _PIECE.findall(answer)
    if lead:  # leading whitespace has no word before it: give it a piece of its own
        pieces.insert(0, answer[:lead])
    return pieces


def _last_user_text(request: TurnRequest) -> str:
    for message in reversed(request.messages):
        if message.role == "user":
            return message.content
    return ""


class EchoProvider(Provider):
    """Echoes the last user message; see the module docstring for the test hooks."""

    name = "echo"

    def __init__(self, delay_ms: int = 0) -> None:
        if delay_ms < 0:
            raise ValueError("delay_ms must be >= 0")
        self.delay_ms = delay_ms

    async def stream(self, request: TurnRequest) -> AsyncIterator[StreamItem]:
        text = _last_user_text(request)
        hook = text.lstrip()
        delay_ms = self.delay_ms
        if hook.startswith("/crash"):
            os._exit(CRASH_EXIT_CODE)
        fail_mid = hook.startswith("/fail-mid")
        if hook.startswith("/fail") and not fail_mid:
            raise ProviderError("echo provider asked to fail", retryable=False)
        if hook.startswith("/slow"):
            delay_ms = max(delay_ms, SLOW_DELAY_MS)

        pieces = split_pieces(f"You said: {text}")
        for index, piece in enumerate(pieces):
            if index:
                if fail_mid:
                    raise ProviderError("echo provider asked to fail", retryable=False)
                # The pause is the product behaviour (YOI_ECHO_DELAY_MS); at 0 it still yields
                # to the loop so a cancelled consumer stops between pieces.
                await asyncio.sleep(delay_ms / 1000)
            yield TextChunk(piece)
        words_in = sum(len(message.content.split()) for message in request.messages)
        yield UsageChunk(input_tokens=words_in, output_tokens=len(pieces))
