"""Pick a provider by name (from a profile or `YOI_PROVIDER`) so callers never name a backend."""

from __future__ import annotations

from runtime_worker.providers.base import Provider
from runtime_worker.providers.chaos import ChaosProvider
from runtime_worker.providers.echo import EchoProvider
from shared.errors import InvalidInput
from shared.settings import Settings

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
PROVIDER_NAMES = ("echo", "chaos", "openai")


def make_provider(name: str, settings: Settings, *, model: str | None = None) -> Provider:
    """`model` overrides `settings.openai_model`; the key is read here, from env or secret file."""
    if name == "echo":
        return EchoProvider(settings.echo_delay_ms)
    if name == "chaos":  # fault tests only: never a default
        return ChaosProvider(settings.echo_delay_ms)
    if name == "openai":
        from runtime_worker.providers.openai_compat import OpenAICompatProvider

        return OpenAICompatProvider(
            settings.openai_base_url or DEFAULT_OPENAI_BASE_URL,
            settings.openai_key(),
            model or settings.openai_model,
        )
    raise InvalidInput(f"unknown provider {name!r}; expected one of {', '.join(PROVIDER_NAMES)}")
