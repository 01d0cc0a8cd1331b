"""The official `openai` Python client against a real gateway process, on the embedded runtime
and on a fleet runtime served by a real `yoi runtime` process: answers equal the Worker's
transcript, usage is reported, a conversation goes on over three calls."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.helpers import wait_until_sync
from tests.openai.conftest import TOKEN, Stack
from tests.openai.support import (
    WORKER_HEADER,
    assert_openai_error,
    create_worker,
    exchanges,
    transcript,
    workers,
)

pytestmark = pytest.mark.slow


def client(stack: Stack, token: str = TOKEN) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.v1, api_key=token, max_retries=0, timeout=30.0)


def test_a_conversation_over_three_calls_streaming_and_not(stack: Stack) -> None:
    with client(stack) as ai:
        first = ai.chat.completions.with_raw_response.create(
            model="assistant", user="alice", messages=[{"role": "user", "content": "one apple"}]
        )
        ref = first.headers[WORKER_HEADER]
        answer_1 = first.parse()
        assert answer_1.choices[0].finish_reason == "stop"
        assert answer_1.usage is not None and answer_1.usage.total_tokens > 0
        assert answer_1.usage.total_tokens == (
            answer_1.usage.prompt_tokens + answer_1.usage.completion_tokens
        )

        stream = ai.chat.completions.create(
            model="assistant",
            user="alice",
            messages=[{"role": "user", "content": "two pears"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        parts: list[str] = []
        finish: list[str] = []
        usage = []
        ids = set()
        for chunk in stream:
            ids.add(chunk.id)
            if chunk.usage is not None:
                usage.append(chunk.usage)
            for choice in chunk.choices:
                parts.append(choice.delta.content or "")
                if choice.finish_reason is not None:
                    finish.append(choice.finish_reason)
        answer_2 = "".join(parts)
        assert len(ids) == 1 and finish == ["stop"]
        assert len(usage) == 1 and usage[0].completion_tokens > 0
        assert len([part for part in parts if part]) > 1, "the answer came in one piece"

        # The client resends the history; only the last user message reaches the Worker.
        third = ai.chat.completions.with_raw_response.create(
            model="assistant",
            messages=[
                {"role": "system", "content": "ignored: the profile's prompt is the system"},
                {"role": "user", "content": "one apple"},
                {"role": "assistant", "content": answer_1.choices[0].message.content},
                {"role": "user", "content": "three plums"},
            ],
            extra_headers={"X-Yoi-Conversation": "alice"},
        )
        assert third.headers[WORKER_HEADER] == ref  # the header's key is `user`'s namesake
        answer_3 = third.parse().choices[0].message.content

    assert ref.startswith(f"{stack.runtime_id}/")
    assert [
        ("user", "one apple"),
        ("assistant", answer_1.choices[0].message.content),
        ("user", "two pears"),
        ("assistant", answer_2),
        ("user", "three plums"),
        ("assistant", answer_3),
    ] == exchanges(transcript(stack, ref))
    answers = [answer_1.choices[0].message.content, answer_2, answer_3]
    for text, answer in zip(("one apple", "two pears", "three plums"), answers, strict=True):
        assert answer is not None and text in answer  # the echo provider answers the text
    assert len(workers(stack)) == 1


def test_other_keys_and_no_key(stack: Stack) -> None:
    """Another key is another Worker; no key is a single-use Worker, stopped after the answer."""
    with client(stack) as ai:
        bob = ai.chat.completions.with_raw_response.create(
            model="assistant", user="bob", messages=[{"role": "user", "content": "hi bob"}]
        )
        carol = ai.chat.completions.with_raw_response.create(
            model="assistant", user="carol", messages=[{"role": "user", "content": "hi carol"}]
        )
        once = ai.chat.completions.with_raw_response.create(
            model="assistant", messages=[{"role": "user", "content": "just once"}]
        )
    refs = {r.headers[WORKER_HEADER] for r in (bob, carol, once)}
    assert len(refs) == 3
    assert "just once" in (once.parse().choices[0].message.content or "")
    single = once.headers[WORKER_HEADER].partition("/")[2]

    def stopped() -> bool:
        states = {w["worker_id"]: w["state"] for w in workers(stack)}
        return bool(states[single] == "stopped")

    wait_until_sync(stopped, what="the single-use Worker stopped")


def test_worker_references_and_the_model_list(stack: Stack) -> None:
    worker_id = create_worker(stack, "pal")
    ref = f"{stack.runtime_id}/{worker_id}"
    with client(stack) as ai:
        listed = [model.id for model in ai.models.list()]
        assert {"assistant", "companion", ref} <= set(listed)
        assert ai.models.retrieve(ref).owned_by == stack.runtime_id
        assert ai.models.retrieve("assistant").id == "assistant"
        by_id = ai.chat.completions.create(
            model=ref, messages=[{"role": "user", "content": "by id"}]
        )
        by_name = ai.chat.completions.create(
            model=f"pal@{stack.runtime_id}", messages=[{"role": "user", "content": "by name"}]
        )
    assert exchanges(transcript(stack, ref)) == [
        ("user", "by id"),
        ("assistant", by_id.choices[0].message.content),
        ("user", "by name"),
        ("assistant", by_name.choices[0].message.content),
    ]


def test_errors_are_in_openai_shape(stack: Stack) -> None:
    message: list[ChatCompletionMessageParam] = [{"role": "user", "content": "never sent"}]
    with client(stack, token="wrong-token") as bad, client(stack) as ai:
        with pytest.raises(openai.AuthenticationError) as unauthorized:
            bad.chat.completions.create(model="assistant", messages=message)
        with pytest.raises(openai.NotFoundError) as unknown:
            ai.chat.completions.create(model="no-such-profile", messages=message)
        with pytest.raises(openai.NotFoundError) as unknown_worker:
            ai.chat.completions.create(model=f"nobody@{stack.runtime_id}", messages=message)
        with pytest.raises(openai.BadRequestError) as empty:
            ai.chat.completions.create(model="assistant", messages=[])
        with pytest.raises(openai.BadRequestError) as not_user:
            ai.chat.completions.create(
                model="assistant", messages=[{"role": "assistant", "content": "no question"}]
            )
    assert_openai_error(unauthorized.value.response, 401, "invalid_api_key")
    assert assert_openai_error(unknown.value.response, 404, "model_not_found")["param"] == "model"
    assert_openai_error(unknown_worker.value.response, 404, "model_not_found")
    assert assert_openai_error(empty.value.response, 400, "invalid_input")["param"] == "messages"
    assert_openai_error(not_user.value.response, 400, "invalid_input")
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    with httpx.Client(base_url=stack.v1, headers=headers, timeout=10) as raw:
        unreadable = raw.post("/chat/completions", content=b"{not json")
        assert_openai_error(unreadable, 400, "invalid_input")
        assert_openai_error(raw.get("/nothing"), 404, None)
        assert_openai_error(raw.get("/chat/completions"), 405, None)
    assert workers(stack) == []  # no failed request created anything
    assert TOKEN not in stack.output()
