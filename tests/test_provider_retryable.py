"""`retryable` is right on provider errors and on the `error` events of runs that hit them.

Transient failures (connection errors, 429, 5xx, timeouts) are retryable; a request the provider
refuses (bad request, auth) is not. Shown against the real local chat-completions server, both
on the provider and end to end through an embedded runtime's `error` event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from runtime_worker.providers import ChatMessage, TurnRequest
from runtime_worker.providers.openai_compat import OpenAICompatProvider
from runtime_worker.runtime import Runtime
from shared.errors import ProviderError
from shared.events import ErrorEvent, Event
from shared.models import CreateWorker, SendInput
from shared.settings import Settings
from tests.fake_openai_server import Behaviour, FakeOpenAIServer
from tests.helpers import free_port

REQUEST = TurnRequest(messages=[ChatMessage("user", "hello")], model="m", max_output_tokens=16)


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer() as running:
        yield running


async def _failure(provider: OpenAICompatProvider) -> ProviderError:
    try:
        with pytest.raises(ProviderError) as caught:
            async for _ in provider.stream(REQUEST):
                pass
    finally:
        await provider.aclose()
    return caught.value


def _provider(base_url: str, **options: float) -> OpenAICompatProvider:
    return OpenAICompatProvider(base_url, "sk-test", "m", backoff_base_s=0.01, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "retryable"), [(400, False), (401, False), (403, False), (429, True), (503, True)]
)
async def test_status_errors(server: FakeOpenAIServer, status: int, retryable: bool) -> None:
    server.script(*[Behaviour.fail(status)] * 2)
    error = await _failure(_provider(server.base_url, max_retries=1))
    assert error.retryable is retryable
    assert str(status) in error.message


async def test_connection_refused_is_retryable() -> None:
    error = await _failure(_provider(f"http://127.0.0.1:{free_port()}/v1", max_retries=0))
    assert error.message.startswith("could not connect")
    assert error.retryable is True


async def test_read_timeout_is_retryable(server: FakeOpenAIServer) -> None:
    server.script(Behaviour(chunks=("", "late"), chunk_delay_s=2.0))  # silent, then stuck
    error = await _failure(_provider(server.base_url, max_retries=0, read_timeout_s=0.2))
    assert "timed out" in error.message
    assert error.retryable is True


async def _error_of_run(settings: Settings) -> ErrorEvent:
    async with Runtime.embedded(settings) as runtime:
        worker = await runtime.create_worker(CreateWorker(display_name="r"))
        accepted = await runtime.send_input(worker.worker_id, SendInput(text="hi"))
        seen: list[Event] = []
        after = accepted.cursor
        async with asyncio.timeout(20):
            while not any(e.type == "run_finished" for e in seen):
                page = await runtime.events(worker.worker_id, after=after, wait_ms=1000)
                seen.extend(page.events)
                after = page.cursor
        (error,) = [e for e in seen if isinstance(e, ErrorEvent)]
        return error


def _openai(base_url: str) -> Settings:
    return Settings(
        provider="openai", openai_base_url=base_url, openai_api_key=SecretStr("sk-test")
    )


async def test_error_event_of_a_5xx_run_is_retryable(server: FakeOpenAIServer) -> None:
    server.script(*[Behaviour.fail(502)] * 10)  # outlasts the provider's retries
    error = await _error_of_run(_openai(server.base_url))
    assert (error.code, error.retryable) == ("provider_error", True)


async def test_error_event_of_a_refused_connection_is_retryable() -> None:
    error = await _error_of_run(_openai(f"http://127.0.0.1:{free_port()}/v1"))
    assert (error.code, error.retryable) == ("provider_error", True)


async def test_error_event_of_a_bad_request_is_not_retryable(server: FakeOpenAIServer) -> None:
    server.script(Behaviour.fail(400, "no such model"))
    error = await _error_of_run(_openai(server.base_url))
    assert (error.code, error.retryable) == ("provider_error", False)


async def test_error_event_of_a_turn_timeout_is_retryable(server: FakeOpenAIServer) -> None:
    server.script(Behaviour.slow(delay_s=0.5))
    settings = _openai(server.base_url).model_copy(update={"turn_timeout_s": 0.3})
    error = await _error_of_run(settings)
    assert (error.code, error.retryable) == ("timeout", True)
