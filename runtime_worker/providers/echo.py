"""The offline `echo` provider: deterministic answers so everything runs with no network or key.

The answer is `"You said: <last user text>"`, streamed one word (plus its trailing whitespace) at
a time with `delay_ms` between pieces, then a `UsageChunk` (input: words in all prompt messages;
output: number of pieces). `max_output_tokens` is ignored: the answer always holds the user's
text verbatim. Every text is just text here: the failure hooks live in the `chaos` provider,
which nobody gets without asking for it by name.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from runtime_worker.providers.base import Provider, StreamItem, TextChunk, TurnRequest, UsageChunk
from shared.errors import ProviderError

_PIECE = re.compile(r"\S+\s*")


def split_pieces(answer: str) -> list[str]:
    """Each word with its trailing whitespace, so the pieces join back to `answer` exactly."""
    lead = len(answer) - len(answer.lstrip())
    pieces: list[str] = _PIECE.findall(answer)
    if lead:  # leading whitespace has no word before it: give it a piece of its own
        pieces.insert(0, answer[:lead])
    return pieces


def last_user_text(request: TurnRequest) -> str:
    for message in reversed(request.messages):
        if message.role == "user":
            return message.content
    return ""


class EchoProvider(Provider):
    """Echoes the last user message, whatever it says."""

    name = "echo"

    def __init__(self, delay_ms: int = 0) -> None:
        if delay_ms < 0:
            raise ValueError("delay_ms must be >= 0")
        self.delay_ms = delay_ms

    async def stream(self, request: TurnRequest) -> AsyncIterator[StreamItem]:
        async for item in self.echo(request, self.delay_ms):
            yield item

    async def echo(
        self, request: TurnRequest, delay_ms: int, *, fail_after: int | None = None
    ) -> AsyncIterator[StreamItem]:
        """The echo answer; `fail_after` pieces (the chaos provider's `/fail-mid`) are followed
        by a `ProviderError` instead of the rest."""
        text = last_user_text(request)
        pieces = split_pieces(f"You said: {text}")
        for index, piece in enumerate(pieces):
            if index:
                if fail_after is not None and index >= fail_after:
                    raise ProviderError("chaos provider asked to fail", retryable=False)
                # The pause is the product behaviour (YOI_ECHO_DELAY_MS); at 0 it still yields
                # to the loop so a cancelled consumer stops between pieces.
                await asyncio.sleep(delay_ms / 1000)
            yield TextChunk(piece)
        words_in = sum(len(message.content.split()) for message in request.messages)
        yield UsageChunk(input_tokens=words_in, output_tokens=len(pieces))
