"""The OpenAI-compatible streaming provider: OpenAI, vLLM, Ollama, llama.cpp server, LM Studio.

Built on the `openai` SDK with its own retries off: this module retries 429, 5xx and connection
errors with exponential backoff and jitter (or after the server's own `Retry-After`; a first
connection failure at once, being most often a pooled connection the server closed), but only
until the first text chunk has been yielded; after that a failure is final, since replaying would
duplicate text the caller already streamed. Error messages name the status or the host:port and
the server's reason with anything secret-shaped masked, never the key or the URL path.

The request goes through the SDK's generic `post` with the body the typed `create` would send,
and chunks are read as plain JSON: the typed path costs ~1.6 ms of CPU per request (walking the
params' TypedDicts) and ~0.1 ms per chunk (building models), all of it before the first token
and, on a shared machine, taken from the model server. Same wire request, same SDK errors.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any
from urllib.parse import urlsplit

import openai

from runtime_worker.providers.base import (
    ChatMessage,
    Provider,
    StreamItem,
    TextChunk,
    TurnRequest,
    UsageChunk,
)
from shared.errors import ProviderError

PLACEHOLDER_API_KEY = "not-needed"
"""Local servers (vLLM, Ollama, llama.cpp) ignore the key, but the SDK insists on one."""


CHAT_PATH = "/chat/completions"
_AUTH: openai.RequestOptions = {"security": {"bearer_auth": True}}  # what `create` asks for


def _wire_message(message: ChatMessage) -> dict[str, str]:
    role = message.role if message.role in ("system", "assistant") else "user"
    return {"role": role, "content": message.content}


def _body(request: TurnRequest, model: str) -> dict[str, Any]:
    """The JSON the SDK's `chat.completions.create` sends for this turn, key for key."""
    body: dict[str, Any] = {
        "model": request.model or model,
        "stream": True,
        "messages": [_wire_message(message) for message in request.messages],
    }
    if request.max_output_tokens > 0:
        # `max_tokens`, not `max_completion_tokens`: every compatible server understands it.
        body["max_tokens"] = request.max_output_tokens
    body["stream_options"] = {"include_usage": True}
    if request.temperature is not None:
        body["temperature"] = request.temperature
    return body


def _read_chunk(chunk: object) -> tuple[str, UsageChunk | None]:
    """A chunk's text (the first choice's content delta) and its usage, if it carries one;
    anything malformed reads as nothing rather than failing the turn."""
    if not isinstance(chunk, dict):
        return "", None
    usage: UsageChunk | None = None
    counts = chunk.get("usage")
    if isinstance(counts, dict):
        usage = UsageChunk(
            input_tokens=_count(counts.get("prompt_tokens")),
            output_tokens=_count(counts.get("completion_tokens")),
        )
    text = ""
    choices = chunk.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        delta = choices[0].get("delta")
        content = delta.get("content") if isinstance(delta, dict) else None
        text = content if isinstance(content, str) else ""
    return text, usage


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _host_port(base_url: str) -> str:
    """Only the host and port of the base URL: paths and userinfo may carry secrets."""
    parts = urlsplit(base_url)
    host = parts.hostname or "provider"
    return f"{host}:{parts.port}" if parts.port else host


MAX_RETRY_AFTER_S = 60.0
"""A server asking for a longer pause is not waited on: the turn fails retryable instead."""
MAX_REASON_CHARS = 200
_SECRET_SHAPES = re.compile(r"(?i)(bearer\s+\S+|sk-[\w-]{8,}|\w+://\S+|(?<!\w)/[\w.-]+/\S*)")


def _retry_after_s(error: openai.OpenAIError) -> float | None:
    """The server's `Retry-After` (seconds) on a 429/503, when it gave one we can honour."""
    if not isinstance(error, openai.APIStatusError):
        return None
    raw = error.response.headers.get("retry-after", "")
    try:
        delay_s = float(raw)
    except ValueError:
        return None  # absent, or an HTTP date: fall back to our own backoff
    return delay_s if delay_s >= 0 else None


def _server_reason(error: openai.APIError, secret: str) -> str:
    """The server's own error message, short, with anything secret-shaped (the key, bearer
    tokens, URLs, file paths) masked: operators need the reason, never the credential."""
    body = error.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str) or not message.strip():
        return ""
    if secret:
        message = message.replace(secret, "***")
    message = _SECRET_SHAPES.sub("***", " ".join(message.split()))
    return f": {message[:MAX_REASON_CHARS]}"


def _hung_up(error: openai.OpenAIError) -> bool:
    """The connection failed, not the server's answer (a timeout is a slow server). The first
    such failure is retried at once: llama.cpp's server closes the connection after every
    streamed answer, so a turn that starts right after one can find its pooled connection
    closed under it; waiting out a backoff would only add that wait to the first token."""
    return isinstance(error, openai.APIConnectionError) and not isinstance(
        error, openai.APITimeoutError
    )


def _is_transient(error: openai.OpenAIError) -> bool:
    """429, 5xx, connection errors and timeouts (`APITimeoutError` is a connection error)."""
    if isinstance(error, openai.APIStatusError):
        return error.status_code == 429 or error.status_code >= 500
    return isinstance(error, openai.APIConnectionError)


class OpenAICompatProvider(Provider):
    """Streams chat completions; `aclose()` closes the shared HTTP client."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        *,
        max_retries: int = 3,
        backoff_base_s: float = 0.2,
        connect_timeout_s: float = 5,
        read_timeout_s: float = 300,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.model = model
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self._where = _host_port(base_url)
        self._secret = api_key or ""
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or PLACEHOLDER_API_KEY,
            max_retries=0,
            timeout=openai.Timeout(read_timeout_s, connect=connect_timeout_s),
        )
        self._closed = False

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._client.close()

    async def stream(self, request: TurnRequest) -> AsyncIterator[StreamItem]:
        attempt = 0
        while True:
            started = False
            try:
                # aclosing: a consumer that stops early must close the HTTP stream now, not at GC.
                async with aclosing(self._attempt(request)) as items:
                    async for item in items:
                        started = started or isinstance(item, TextChunk)
                        yield item
                return
            except openai.OpenAIError as error:
                if started:  # replaying would repeat streamed text: final, but worth a resend
                    raise ProviderError(
                        "provider stream failed after output started",
                        retryable=_is_transient(error),
                    ) from None
                if not _is_transient(error):
                    raise self._final_error(error, attempts=attempt + 1) from None
                asked_s = _retry_after_s(error)
                if attempt >= self.max_retries or (asked_s or 0) > MAX_RETRY_AFTER_S:
                    raise self._final_error(error, attempts=attempt + 1) from None
                if asked_s is not None:
                    pause_s = asked_s
                elif attempt == 0 and _hung_up(error):
                    pause_s = 0.0  # most likely a kept-alive connection the server had closed
                else:
                    pause_s = self._backoff_s(attempt)
            await asyncio.sleep(pause_s)
            attempt += 1

    async def _attempt(self, request: TurnRequest) -> AsyncGenerator[StreamItem, None]:
        """One HTTP request; the SDK stream is closed on exit, so cancelling aborts it."""
        usage: UsageChunk | None = None
        chunks = await self._client.post(
            CHAT_PATH,
            body=_body(request, self.model),
            cast_to=object,
            options=_AUTH,
            stream=True,
            stream_cls=openai.AsyncStream[object],
        )
        async with chunks:
            async for chunk in chunks:
                text, counted = _read_chunk(chunk)
                if counted is not None:
                    usage = counted
                if text:
                    yield TextChunk(text)
        if usage is not None:
            yield usage

    def _backoff_s(self, attempt: int) -> float:
        """Exponential, jittered to 50-100% of the step so many Workers retrying spread out."""
        step = self.backoff_base_s * 2.0**attempt
        return step * random.uniform(0.5, 1.0)

    def _final_error(self, error: openai.OpenAIError, *, attempts: int) -> ProviderError:
        suffix = f" after {attempts} attempts" if attempts > 1 else ""
        if isinstance(error, openai.APIStatusError):
            transient = _is_transient(error)
            reason = _server_reason(error, self._secret)
            return ProviderError(
                f"provider returned HTTP {error.status_code}{suffix}{reason}", retryable=transient
            )
        if isinstance(error, openai.APITimeoutError):
            return ProviderError(f"provider at {self._where} timed out{suffix}", retryable=True)
        if isinstance(error, openai.APIConnectionError):
            return ProviderError(
                f"could not connect to provider at {self._where}{suffix}", retryable=True
            )
        reason = _server_reason(error, self._secret) if isinstance(error, openai.APIError) else ""
        return ProviderError(
            f"provider sent an error instead of an answer{reason}", retryable=False
        )
