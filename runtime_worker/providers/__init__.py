"""LLM providers behind one boundary: `make_provider(name, settings)` picks the backend."""

from runtime_worker.providers.base import ChatMessage, Provider, TextChunk, TurnRequest, UsageChunk
from runtime_worker.providers.echo import EchoProvider
from runtime_worker.providers.factory import make_provider
from runtime_worker.providers.openai_compat import OpenAICompatProvider

__all__ = [
    "ChatMessage",
    "EchoProvider",
    "OpenAICompatProvider",
    "Provider",
    "TextChunk",
    "TurnRequest",
    "UsageChunk",
    "make_provider",
]
