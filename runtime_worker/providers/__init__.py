"""LLM providers behind one boundary: `make_provider(name, settings)` picks the backend."""

from runtime_worker.providers.base import ChatMessage, Provider, TextChunk, TurnRequest, UsageChunk
from runtime_worker.providers.chaos import ChaosProvider
from runtime_worker.providers.echo import EchoProvider
from runtime_worker.providers.factory import make_provider


def __getattr__(name: str) -> object:
    # The openai client costs ~0.8 s to import: only processes that use it pay for it.
    if name == "OpenAICompatProvider":
        from runtime_worker.providers.openai_compat import OpenAICompatProvider

        return OpenAICompatProvider
    raise AttributeError(name)


__all__ = [
    "ChaosProvider",
    "ChatMessage",
    "EchoProvider",
    "OpenAICompatProvider",
    "Provider",
    "TextChunk",
    "TurnRequest",
    "UsageChunk",
    "make_provider",
]
