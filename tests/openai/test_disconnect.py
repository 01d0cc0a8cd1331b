"""The facade's rules for busy Workers and clients that leave, over real sockets: a second
request to a Worker still answering is an OpenAI-shaped 409 `worker_busy` that changes nothing,
and a client that drops its stream (or its plain request) cancels its run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.helpers import wait_until_sync
from tests.openai.conftest import TOKEN, Stack
from tests.openai.support import WORKER_HEADER, assert_openai_error, events, sse_data, workers

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {TOKEN}"}
LONG = " ".join(f"word{i}" for i in range(400))  # ~4 s of echo at 10 ms a word


def run_result(stack: Stack, ref: str, input_id: str) -> str | None:
    for event in events(stack, ref):
        if event["type"] == "run_finished" and event["input_id"] == input_id:
            result: str = event["result"]
            return result
    return None


def first_text_chunk(lines: Iterator[str]) -> dict[str, Any]:
    """Reads on from `lines`, which the caller keeps: a dropped httpx line iterator closes the
    connection (that is a disconnect, and would cancel the run)."""
    for data in sse_data(lines):
        if data != "[DONE]":
            chunk: dict[str, Any] = json.loads(data)
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                return chunk
    raise AssertionError("the stream ended without text")


def test_busy_is_409_and_a_dropped_stream_cancels_its_run(stack: Stack) -> None:
    body = {
        "model": "assistant",
        "user": "gus",
        "stream": True,
        "messages": [{"role": "user", "content": LONG}],
    }
    with (
        httpx.Client(base_url=stack.v1, headers=AUTH, timeout=30) as http,
        http.stream("POST", "/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        ref = response.headers[WORKER_HEADER]
        lines = response.iter_lines()
        input_id = first_text_chunk(lines)["id"].removeprefix("chatcmpl-")
        with (
            openai.OpenAI(base_url=stack.v1, api_key=TOKEN, max_retries=0) as ai,
            pytest.raises(openai.ConflictError) as busy,
        ):
            ai.chat.completions.create(model=ref, messages=[{"role": "user", "content": "me too"}])
        assert_openai_error(busy.value.response, 409, "worker_busy")
        assert busy.value.response.headers["retry-after"] == "1"
        assert run_result(stack, ref, input_id) is None  # still answering when we leave
    # Leaving the block closed the connection mid-answer.
    wait_until_sync(
        lambda: run_result(stack, ref, input_id) is not None, what="the dropped stream's run ended"
    )
    assert run_result(stack, ref, input_id) == "cancelled"
    user_messages = [e for e in events(stack, ref) if e["type"] == "user_message"]
    assert [e["input_id"] for e in user_messages] == [input_id]  # the 409 queued nothing


def test_a_plain_request_that_gives_up_cancels_its_run(stack: Stack) -> None:
    body = {"model": "assistant", "user": "hal", "messages": [{"role": "user", "content": LONG}]}
    with httpx.Client(base_url=stack.v1, headers=AUTH) as http, pytest.raises(httpx.ReadTimeout):
        http.post("/chat/completions", json=body, timeout=httpx.Timeout(30, read=1.0))
    (worker,) = workers(stack)  # the key's Worker, made by the request that gave up
    ref = f"{stack.runtime_id}/{worker['worker_id']}"

    def finished() -> list[str]:
        return [e["result"] for e in events(stack, ref) if e["type"] == "run_finished"]

    wait_until_sync(lambda: bool(finished()), what="the abandoned run ended")
    assert finished() == ["cancelled"]
    with openai.OpenAI(base_url=stack.v1, api_key=TOKEN, max_retries=0) as ai:
        after = ai.chat.completions.with_raw_response.create(
            model="assistant", user="hal", messages=[{"role": "user", "content": "still there?"}]
        )
    assert after.headers[WORKER_HEADER] == ref  # the conversation goes on
    assert finished() == ["cancelled", "finished"]
