"""The `Provider` boundary: one LLM turn streamed as text chunks and a final usage record.

A provider raises `shared.errors.ProviderError` for failures it cannot retry away, retries
transient ones (429, 5xx, connection errors) itself before the first chunk, and is cancelled by
cancelling the task iterating it: closing the stream aborts the request. The turn timeout is the
caller's (the host wraps the whole turn in `asyncio.timeout`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class TurnRequest:
    messages: list[ChatMessage]
    model: str
    max_output_tokens: int
    temperature: float | None = None


@dataclass(frozen=True)
class TextChunk:
    text: str


@dataclass(frozen=True)
class UsageChunk:
    input_tokens: int
    output_tokens: int


StreamItem = TextChunk | UsageChunk


class Provider(ABC):
    name: str

    @abstractmethod
    def stream(self, request: TurnRequest) -> AsyncIterator[StreamItem]:
        """Yield the answer's text chunks and `UsageChunk`s, each a running total (the last
        counts). A turn cut short (cancel, failure, timeout) is billed by what was seen: the
        host counts one output token per text chunk beyond the last usage total."""

    async def aclose(self) -> None:  # noqa: B027 - most providers hold nothing to close
        """Release HTTP clients. Idempotent."""
