"""The OpenAI-compatible provider and the host against a real llama-server serving SmolLM2-135M.

Faults the server would not make on cue (429/503 with `Retry-After`, an answer cut off) come from
a tiny proxy in front of it; everything else is the real server's own behaviour.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from bench.llama_server import MODEL_NAME, LlamaServer
from runtime_worker import Runtime
from runtime_worker.providers.base import (
    ChatMessage,
    StreamItem,
    TextChunk,
    TurnRequest,
    UsageChunk,
)
from runtime_worker.providers.openai_compat import OpenAICompatProvider
from shared.errors import ProviderError
from shared.events import Event
from shared.models import CreateWorker, RunResult, SendInput
from tests.helpers import wait_until
from tests.llm.conftest import PROFILE, MakeRuntime
from tests.llm.proxy import CutAfter, Inject, LlamaProxy

pytestmark = [pytest.mark.llm, pytest.mark.slow]

API_KEY = "sk-llm-test-SECRET-93be1f"
LONG_ASK = "Count from 1 to 500, one number per line."


def _request(text: str, max_tokens: int = 24) -> TurnRequest:
    return TurnRequest(
        messages=[ChatMessage("system", "You are brief."), ChatMessage("user", text)],
        model=MODEL_NAME,
        max_output_tokens=max_tokens,
        temperature=0.0,
    )


async def _collect(provider: OpenAICompatProvider, request: TurnRequest) -> list[StreamItem]:
    return [item async for item in provider.stream(request)]


def _provider(base_url: str, **options: Any) -> OpenAICompatProvider:
    return OpenAICompatProvider(base_url, API_KEY, MODEL_NAME, **options)


async def _run(rt: Runtime, text: str) -> tuple[str, list[Event]]:
    """Send `text` to a new Worker and read its events up to `run_finished`."""
    worker_id = (await rt.create_worker(CreateWorker(display_name="m", profile=PROFILE))).worker_id
    accepted = await rt.send_input(worker_id, SendInput(text=text))
    return worker_id, await _events_until_finished(rt, worker_id, accepted.cursor)


async def _events_until_finished(rt: Runtime, worker_id: str, after: str) -> list[Event]:
    seen: list[Event] = []
    async with asyncio.timeout(60):
        while not any(e.type == "run_finished" for e in seen):
            page = await rt.events(worker_id, after=after, wait_ms=1000)
            seen.extend(page.events)
            after = page.cursor
    return seen


def _of(events: list[Event], kind: str) -> list[Any]:
    return [e for e in events if e.type == kind]


async def _slots(llama: LlamaServer) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        reply = await client.get(f"{llama.origin}/slots", timeout=5)
    reply.raise_for_status()
    slots: list[dict[str, Any]] = reply.json()
    return slots


async def test_streams_a_greedy_answer_token_by_token(llama: LlamaServer) -> None:
    provider = _provider(llama.base_url)
    try:
        first = await _collect(provider, _request("Name a colour."))
        again = await _collect(provider, _request("Name a colour."))
    finally:
        await provider.aclose()
    texts = [item for item in first if isinstance(item, TextChunk)]
    (usage,) = [item for item in first if isinstance(item, UsageChunk)]
    assert len(texts) >= 2  # streamed in pieces, not as one block
    assert usage.input_tokens > 0 and 0 < usage.output_tokens <= 24
    assert "".join(t.text for t in texts) == "".join(
        item.text for item in again if isinstance(item, TextChunk)
    )  # temperature 0 reached the server: the answer is reproducible


async def test_usage_is_recorded_for_a_finished_run(
    llama: LlamaServer, make_runtime: MakeRuntime
) -> None:
    async with make_runtime(llama.base_url) as rt:
        worker_id, events = await _run(rt, "What is the capital of France?")
        (finished,) = _of(events, "run_finished")
        (usage,) = _of(events, "usage")
        assert finished.result is RunResult.FINISHED
        assert usage.input_tokens > 10  # the system prompt and the question, as the server counted
        assert 0 < usage.output_tokens <= 32
        recorded = (await rt.get_worker(worker_id)).usage
        assert (recorded.input_tokens, recorded.output_tokens) == (
            usage.input_tokens,
            usage.output_tokens,
        )


async def test_cancel_stops_the_servers_generation(
    llama: LlamaServer, make_runtime: MakeRuntime
) -> None:
    async with make_runtime(llama.base_url, max_tokens=1500) as rt:
        worker_id = (
            await rt.create_worker(CreateWorker(display_name="c", profile=PROFILE))
        ).worker_id
        accepted = await rt.send_input(worker_id, SendInput(text=LONG_ASK))

        async def streaming() -> bool:
            page = await rt.events(worker_id, after=accepted.cursor, limit=1000)
            return len(_of(page.events, "text_delta")) >= 3

        await wait_until(streaming, timeout_s=60, what="the answer to stream")
        assert any(slot["is_processing"] for slot in await _slots(llama))
        cancelled_at = time.monotonic()
        await rt.cancel(worker_id)

        async def server_idle() -> bool:
            return not any(slot["is_processing"] for slot in await _slots(llama))

        await wait_until(server_idle, timeout_s=5, what="llama-server to stop generating")
        stopped_after_s = time.monotonic() - cancelled_at
        events = await _events_until_finished(rt, worker_id, accepted.cursor)
        (finished,) = _of(events, "run_finished")
        assert finished.result is RunResult.CANCELLED
        assert stopped_after_s < 2  # SPEC: the provider request is aborted within a second or so
        (slot,) = await _slots(llama)
        assert slot["next_token"][0]["n_remain"] != 0  # it gave the turn up, not finished it
        usage = (await rt.get_worker(worker_id)).usage
        assert 0 < usage.output_tokens < 1500  # the cancelled run's streamed tokens are billed


async def test_server_down_is_a_retryable_provider_error(
    llama: LlamaServer, make_runtime: MakeRuntime
) -> None:
    async with LlamaProxy(llama.port) as proxy:
        base_url = proxy.base_url
        await proxy.close()  # nothing listens there any more: the server is down
        provider = _provider(base_url, max_retries=1, backoff_base_s=0.01)
        try:
            with pytest.raises(ProviderError) as caught:
                await _collect(provider, _request("hello"))
        finally:
            await provider.aclose()
        assert caught.value.retryable is True
        assert caught.value.message.startswith("could not connect to provider at 127.0.0.1:")
        async with make_runtime(base_url) as rt:
            _, events = await _run(rt, "hello")
        (finished,) = _of(events, "run_finished")
        (error,) = _of(events, "error")
        assert finished.result is RunResult.FAILED
        assert error.code == "provider_error"
        assert error.retryable is True  # the server may come back: sending again may work
        assert API_KEY not in error.message and "/v1" not in error.message


@pytest.mark.parametrize("status", [429, 503])
async def test_busy_server_is_retried_after_its_retry_after(
    llama: LlamaServer, status: int
) -> None:
    async with LlamaProxy(llama.port) as proxy:
        proxy.script.append(Inject(status, retry_after="1"))
        provider = _provider(proxy.base_url, backoff_base_s=0.0)
        try:
            started = time.monotonic()
            items = await _collect(provider, _request("Say hi."))
            waited_s = time.monotonic() - started
        finally:
            await provider.aclose()
    assert proxy.requests == 2
    assert any(isinstance(item, TextChunk) for item in items)
    assert waited_s >= 1.0  # backoff is 0: only the server's Retry-After explains the pause


async def test_retry_after_beyond_the_limit_fails_retryable_at_once(llama: LlamaServer) -> None:
    async with LlamaProxy(llama.port) as proxy:
        proxy.script.append(Inject(429, retry_after="600", message="quota: wait ten minutes"))
        provider = _provider(proxy.base_url)
        try:
            with pytest.raises(ProviderError) as caught:
                await _collect(provider, _request("Say hi."))
        finally:
            await provider.aclose()
    assert proxy.requests == 1
    assert caught.value.retryable is True
    assert caught.value.message == "provider returned HTTP 429: quota: wait ten minutes"


async def test_a_run_cut_off_mid_answer_fails_and_records_its_tokens(
    llama: LlamaServer, make_runtime: MakeRuntime
) -> None:
    async with LlamaProxy(llama.port) as proxy:
        proxy.script.append(CutAfter(body_bytes=3000))  # a few events into the answer
        async with make_runtime(proxy.base_url, max_tokens=400) as rt:
            worker_id, events = await _run(rt, LONG_ASK)
            usage = (await rt.get_worker(worker_id)).usage
    (finished,) = _of(events, "run_finished")
    (error,) = _of(events, "error")
    assert finished.result is RunResult.FAILED
    assert error.code == "provider_error"
    streamed = "".join(e.text for e in _of(events, "text_delta"))
    assert streamed  # output had started, so the failure is final, not retried
    assert proxy.requests == 1
    assert usage.output_tokens > 0
    assert usage.runs_by_result.get("failed") == 1


async def test_the_servers_error_reason_is_shown_without_secrets(llama: LlamaServer) -> None:
    provider = _provider(llama.base_url, max_retries=0)
    too_long = "word " * 6000  # beyond the server's context window
    try:
        with pytest.raises(ProviderError) as caught:
            await _collect(provider, _request(too_long))
    finally:
        await provider.aclose()
    message = caught.value.message
    assert "exceeds the available context size" in message
    assert API_KEY not in message
    assert ".gguf" not in message and "/root" not in message
    assert caught.value.retryable is False
