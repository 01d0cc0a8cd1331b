"""The facade's rules that need no second process, in-process over ASGI on the embedded
runtime: the completion deadline, size limits, content parts and what is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.registry import RuntimeRegistry
from tests.gateway.support import events_until, running_app, settings_for
from tests.openai.support import assert_openai_error, sse_data

LONG = " ".join(f"word{i}" for i in range(300))


@pytest.fixture
async def client(namespace: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for(namespace).model_copy(
        update={"echo_delay_ms": 20, "chat_timeout_s": 0.5, "max_body_bytes": 4096}
    )
    async with running_app(settings) as (_, http):
        yield http


def ask(content: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "assistant", "messages": [{"role": "user", "content": content}], **extra}


async def test_a_run_past_the_deadline_is_504_and_cancelled(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json=ask(LONG, user="ivy"))
    assert_openai_error(response, 504, "timeout")
    runtime_id, _, worker_id = response.headers["x-yoi-worker"].partition("/")
    path = f"/api/runtimes/{runtime_id}/workers/{worker_id}/events"

    def ended(events: list[dict[str, Any]]) -> bool:
        return any(e["type"] == "run_finished" for e in events)

    finished = [
        e for e in await events_until(client, path, None, ended) if e["type"] == "run_finished"
    ]
    assert [e["result"] for e in finished] == ["cancelled"]


async def test_a_streamed_run_past_the_deadline_ends_with_an_error_chunk(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/chat/completions", json=ask(LONG, user="jon", stream=True))
    assert response.status_code == 200
    data = list(sse_data(response.text.splitlines()))
    assert data[-1] == "[DONE]"
    assert '"code":"timeout"' in data[-2] and '"error"' in data[-2]


async def test_limits_and_refusals_change_nothing(client: httpx.AsyncClient) -> None:
    too_big = await client.post("/v1/chat/completions", json=ask("x" * 5000))
    assert_openai_error(too_big, 413, "payload_too_large")
    two = await client.post("/v1/chat/completions", json=ask("hi", n=2))
    assert assert_openai_error(two, 400, "invalid_input")["param"] == "n"
    blank = await client.post("/v1/chat/completions", json=ask([{"type": "image_url"}]))
    assert_openai_error(blank, 400, "invalid_input")
    role = await client.post(
        "/v1/chat/completions", json={"model": "assistant", "messages": [{"role": "robot"}]}
    )
    assert assert_openai_error(role, 400, "invalid_input")["param"].startswith("messages.0")
    listed = (await client.get("/api/runtimes/backend-internal/workers")).json()["workers"]
    assert listed == []


async def test_text_parts_are_joined(namespace: str) -> None:
    async with running_app(settings_for(namespace)) as (_, http):
        parts = [
            {"type": "text", "text": "alpha "},
            {"type": "image_url"},
            {"type": "text", "text": "beta"},
        ]
        response = await http.post("/v1/chat/completions", json=ask(parts, user="kim"))
        assert response.status_code == 200, response.text
        assert "alpha beta" in response.json()["choices"][0]["message"]["content"]


def test_the_chat_runtime_must_be_served(namespace: str) -> None:
    with pytest.raises(ValueError, match="chat runtime"):
        RuntimeRegistry.from_settings(
            settings_for(namespace).model_copy(update={"chat_runtime": "elsewhere"})
        )
