"""The OpenAI-compatible provider against a real local server speaking the streaming wire format."""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing

import openai
import pytest
from pydantic import SecretStr

from runtime_worker.providers import (
    ChatMessage,
    TextChunk,
    TurnRequest,
    UsageChunk,
    make_provider,
)
from runtime_worker.providers.base import Provider, StreamItem
from runtime_worker.providers.openai_compat import OpenAICompatProvider
from shared.errors import ProviderError
from shared.settings import Settings
from tests.fake_openai_server import DEFAULT_CHUNKS, Behaviour, FakeOpenAIServer
from tests.helpers import free_port, wait_until

API_KEY = "sk-test-SECRET-4f9a1c"
MESSAGES = [ChatMessage("system", "be kind"), ChatMessage("user", "say hello to the world")]

MakeProvider = Callable[..., OpenAICompatProvider]


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer() as running:
        yield running


@pytest.fixture
async def make(server: FakeOpenAIServer) -> AsyncIterator[MakeProvider]:
    """Providers aimed at the fake server with fast backoff; all closed at teardown."""
    made: list[OpenAICompatProvider] = []

    def build(**overrides: object) -> OpenAICompatProvider:
        options: dict[str, object] = {
            "base_url": server.base_url,
            "api_key": API_KEY,
            "model": "default-model",
            "backoff_base_s": 0.01,
            **overrides,
        }
        provider = OpenAICompatProvider(**options)  # type: ignore[arg-type]
        made.append(provider)
        return provider

    yield build
    for provider in made:
        await provider.aclose()


def _request(model: str = "turn-model") -> TurnRequest:
    return TurnRequest(messages=MESSAGES, model=model, max_output_tokens=64)


async def _collect(provider: Provider, request: TurnRequest | None = None) -> list[StreamItem]:
    return [item async for item in provider.stream(request or _request())]


def _text(items: list[StreamItem]) -> str:
    return "".join(item.text for item in items if isinstance(item, TextChunk))


def _closed(server: FakeOpenAIServer, index: int = 0) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(server.requests) > index and server.requests[index].client_closed

    return check


async def test_streams_text_then_usage(server: FakeOpenAIServer, make: MakeProvider) -> None:
    items = await _collect(make())
    assert _text(items) == "".join(DEFAULT_CHUNKS)
    assert items[-1] == UsageChunk(input_tokens=7, output_tokens=len(DEFAULT_CHUNKS))
    [seen] = server.requests
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == f"Bearer {API_KEY}"
    assert seen.body["model"] == "turn-model"
    assert seen.body["stream"] is True
    assert seen.body["stream_options"] == {"include_usage": True}
    assert seen.body["max_tokens"] == 64
    assert seen.body["messages"] == [
        {"role": "system", "content": "be kind"},
        {"role": "user", "content": "say hello to the world"},
    ]
    assert seen.finished and not seen.client_closed


async def test_the_request_is_the_one_the_typed_sdk_call_sends(
    server: FakeOpenAIServer, make: MakeProvider
) -> None:
    """The provider skips the SDK's typed `create` (for its CPU cost), not its request: the
    same body, key for key, and the same headers (the key included) as `create` sends."""
    greedy = TurnRequest(messages=MESSAGES, model="m", max_output_tokens=7, temperature=0.0)
    await _collect(make(), greedy)
    sdk = openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
    try:
        stream = await sdk.chat.completions.create(
            model="m",
            messages=[{"role": "system", "content": "be kind"},
                      {"role": "user", "content": "say hello to the world"}],
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=7,
            temperature=0.0,
        )  # fmt: skip
        async with stream:
            async for _ in stream:
                pass
    finally:
        await sdk.close()
    ours, typed = server.requests
    assert ours.body == typed.body  # key for key (their order is the SDK version's)

    def fixed(headers: dict[str, str]) -> dict[str, str]:  # the SDK's per-call retry/timeout
        return {k: v for k, v in headers.items() if not k.startswith("x-stainless-r")}

    assert fixed(ours.headers) == fixed(typed.headers)
    assert ours.headers["authorization"] == f"Bearer {API_KEY}"


async def test_model_falls_back_to_the_default(
    server: FakeOpenAIServer, make: MakeProvider
) -> None:
    await _collect(make(), _request(model=""))
    assert server.requests[0].body["model"] == "default-model"


async def test_429_once_is_retried(server: FakeOpenAIServer, make: MakeProvider) -> None:
    server.script(Behaviour.fail(429))
    items = await _collect(make())
    assert _text(items) == "".join(DEFAULT_CHUNKS)
    assert len(server.requests) == 2


async def test_5xx_until_retries_run_out(server: FakeOpenAIServer, make: MakeProvider) -> None:
    server.script(*[Behaviour.fail(500)] * 4)
    with pytest.raises(ProviderError) as caught:
        await _collect(make(max_retries=3))
    assert caught.value.message == "provider returned HTTP 500 after 4 attempts: fake failure"
    assert caught.value.retryable is True
    assert len(server.requests) == 4


async def test_other_4xx_fails_at_once(server: FakeOpenAIServer, make: MakeProvider) -> None:
    server.script(Behaviour.fail(400, "bad model"))
    with pytest.raises(ProviderError) as caught:
        await _collect(make())
    assert caught.value.message == "provider returned HTTP 400: bad model"
    assert caught.value.retryable is False
    assert len(server.requests) == 1


async def test_disconnect_before_output_is_retried(
    server: FakeOpenAIServer, make: MakeProvider
) -> None:
    server.script(Behaviour.disconnect(after=0))
    assert _text(await _collect(make())) == "".join(DEFAULT_CHUNKS)
    assert len(server.requests) == 2


async def test_a_connection_closed_unanswered_is_retried_at_once(
    server: FakeOpenAIServer, make: MakeProvider
) -> None:
    """The first connection failure skips the backoff (30-60 s here, past the test's limit):
    it is most often a pooled connection the server had closed, and the wait would land on the
    first token."""
    server.script(Behaviour.unanswered())
    async with asyncio.timeout(10):
        items = await _collect(make(backoff_base_s=60.0))
    assert _text(items) == "".join(DEFAULT_CHUNKS)
    assert len(server.requests) == 2


async def test_disconnect_after_output_is_final(
    server: FakeOpenAIServer, make: MakeProvider
) -> None:
    server.script(Behaviour.disconnect(after=2))
    received: list[StreamItem] = []
    with pytest.raises(ProviderError) as caught:
        async for item in make().stream(_request()):
            received.append(item)
    assert _text(received) == "".join(DEFAULT_CHUNKS[:2])
    assert caught.value.message == "provider stream failed after output started"
    assert caught.value.retryable is True  # a broken connection: resending may work
    assert len(server.requests) == 1


async def test_unreachable_server_is_a_provider_error(make: MakeProvider) -> None:
    provider = make(base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=1)
    with pytest.raises(ProviderError) as caught:
        await _collect(provider)
    assert caught.value.message.startswith("could not connect to provider at 127.0.0.1:")
    assert caught.value.message.endswith("after 2 attempts")


async def test_caller_timeout_aborts_the_request(
    server: FakeOpenAIServer, make: MakeProvider
) -> None:
    server.script(Behaviour.slow(delay_s=0.2))
    received: list[StreamItem] = []
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(None) as deadline:
            async for item in make().stream(_request()):
                if not received:  # the caller's deadline falls mid-answer, however slow the start
                    deadline.reschedule(asyncio.get_running_loop().time() + 0.3)
                received.append(item)
    assert received, "some text streamed before the deadline"
    await wait_until(_closed(server), timeout_s=5, what="the server to see the hang-up")
    assert not server.requests[0].finished


async def test_cancel_closes_the_connection(server: FakeOpenAIServer, make: MakeProvider) -> None:
    server.script(Behaviour.slow(delay_s=0.2))
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in make().stream(_request()):
            first.set()

    task = asyncio.create_task(consume())
    try:
        async with asyncio.timeout(5):
            await first.wait()
    finally:
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until(_closed(server), timeout_s=5, what="the server to see the hang-up")
    assert len(server.requests) == 1


async def test_stopping_early_closes_the_connection(
    server: FakeOpenAIServer, make: MakeProvider
) -> None:
    server.script(Behaviour.slow(delay_s=0.2))
    stream = make().stream(_request())
    assert isinstance(stream, AsyncGenerator)  # so a caller can close it early
    async with aclosing(stream) as items:
        async for item in items:
            assert isinstance(item, TextChunk)
            break
    await wait_until(_closed(server), timeout_s=5, what="the server to see the hang-up")


async def test_errors_never_carry_the_key_or_url_path(
    server: FakeOpenAIServer, make: MakeProvider
) -> None:
    secret_path = "/v1/tenant-token-77e1"
    echo_key = f"Incorrect API key provided: {API_KEY} at {secret_path}"
    server.script(
        Behaviour.fail(401, echo_key),
        *[Behaviour.fail(503, echo_key)] * 2,
        Behaviour.disconnect(after=1),
    )
    base_url = f"http://user:{API_KEY}@127.0.0.1:{server.port}{secret_path}"
    provider = make(base_url=base_url, max_retries=1)
    unreachable = make(base_url=f"http://127.0.0.1:{free_port()}{secret_path}", max_retries=0)
    errors: list[ProviderError] = []
    for target in (provider, provider, provider, unreachable):
        with pytest.raises(ProviderError) as caught:
            await _collect(target)
        errors.append(caught.value)
    assert len(server.requests) == 4
    for error in errors:
        rendered = "".join(traceback.format_exception(error))
        assert API_KEY not in rendered
        assert "tenant-token" not in rendered
        assert API_KEY not in repr(error.details)


async def test_factory_builds_from_settings(server: FakeOpenAIServer) -> None:
    settings = Settings(
        openai_base_url=server.base_url,
        openai_api_key=SecretStr(API_KEY),
        openai_model="settings-model",
    )
    provider = make_provider("openai", settings, model="profile-model")
    try:
        assert isinstance(provider, OpenAICompatProvider)
        await _collect(provider, _request(model=""))
    finally:
        await provider.aclose()
        await provider.aclose()  # idempotent
    assert server.requests[0].headers["authorization"] == f"Bearer {API_KEY}"
    assert server.requests[0].body["model"] == "profile-model"


async def test_no_key_sends_a_placeholder(server: FakeOpenAIServer) -> None:
    settings = Settings(
        openai_base_url=server.base_url, openai_api_key=None, openai_api_key_file=None
    )
    provider = make_provider("openai", settings)
    try:
        await _collect(provider, _request(model=""))
    finally:
        await provider.aclose()
    assert server.requests[0].headers["authorization"] == "Bearer not-needed"
    assert server.requests[0].body["model"] == settings.openai_model


async def test_temperature_reaches_the_server_only_when_set(
    server: FakeOpenAIServer, make: MakeProvider
) -> None:
    provider = make()
    greedy = TurnRequest(messages=MESSAGES, model="m", max_output_tokens=7, temperature=0.0)
    await _collect(provider, greedy)
    await _collect(provider, _request())
    assert server.requests[0].body["temperature"] == 0
    assert server.requests[0].body["max_tokens"] == 7
    assert "temperature" not in server.requests[1].body


async def test_retry_after_is_waited_before_the_retry(
    server: FakeOpenAIServer, make: MakeProvider
) -> None:
    server.script(Behaviour.fail(429, "slow down", retry_after="0.4"))
    provider = make(backoff_base_s=0.0)
    started = time.monotonic()
    items = await _collect(provider)
    waited_s = time.monotonic() - started
    assert _text(items) == "".join(DEFAULT_CHUNKS)
    assert len(server.requests) == 2
    assert waited_s >= 0.4  # with backoff 0 only the server's Retry-After explains the wait


async def test_a_retry_after_too_long_fails_retryable_at_once(
    server: FakeOpenAIServer, make: MakeProvider
) -> None:
    server.script(Behaviour.fail(503, "overloaded", retry_after="3600"))
    with pytest.raises(ProviderError) as caught:
        await _collect(make())
    assert len(server.requests) == 1
    assert caught.value.retryable is True
    assert "HTTP 503" in caught.value.message


async def test_the_servers_reason_is_shown_with_secrets_masked(
    server: FakeOpenAIServer, make: MakeProvider
) -> None:
    reason = f"context too long for model (key {API_KEY}, see /srv/models/a.gguf)"
    server.script(Behaviour.fail(400, reason))
    with pytest.raises(ProviderError) as caught:
        await _collect(make())
    message = caught.value.message
    assert "HTTP 400: context too long for model" in message
    assert API_KEY not in message
    assert "/srv/models" not in message
    assert caught.value.retryable is False
