"""`/v1` is rate limited and backpressured like `/api`, in OpenAI's shape, seen through the
official `openai` client against real gateway (and member) processes: past the per-caller rate
a 429 `rate_limit_exceeded` with `Retry-After` (raised with `max_retries=0`, waited out and
answered with retries on), and a fleet whose members are all at capacity answers a new
conversation 503 `capacity_exhausted` with `Retry-After`, having created nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.browser.gateway_process import Gateway, running_gateway
from tests.fleet.conftest import delete_namespace
from tests.fleet.support import FAST_ENV, Fleet
from tests.helpers import wait_until_sync
from tests.openai.support import assert_openai_error

pytestmark = pytest.mark.slow

TOKEN = "openai-limits-token"
HELLO: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


def client(gateway: Gateway, retries: int) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{gateway.url}/v1", api_key=TOKEN, max_retries=retries, timeout=30.0
    )


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Gateway]:
    """One request every 2 s per caller, two at once."""
    env = {"YOI_RATE_LIMIT_PER_S": "0.5", "YOI_RATE_LIMIT_BURST": "2", "YOI_DATA_DIR": ""}
    with running_gateway(tmp_path, token=TOKEN, echo_delay_ms=0, env=env) as running:
        yield running


def test_past_the_rate_a_429_in_openai_shape_that_retries_wait_out(limited: Gateway) -> None:
    with client(limited, retries=0) as ai:
        for _ in range(2):  # the burst
            done = ai.chat.completions.create(model="assistant", user="a", messages=HELLO)
            assert done.choices[0].message.content
        with pytest.raises(openai.RateLimitError) as raised:
            ai.chat.completions.create(model="assistant", user="a", messages=HELLO)
    response = raised.value.response
    error = assert_openai_error(response, 429, "rate_limit_exceeded")
    assert error["type"] == "rate_limit_error"
    assert 1 <= int(response.headers["Retry-After"]) <= 2
    # /v1/models is limited by the same bucket.
    with client(limited, retries=0) as ai, pytest.raises(openai.RateLimitError):
        ai.models.list()

    # With its retries on, the client waits out Retry-After and the call is answered.
    with client(limited, retries=3) as ai:
        done = ai.chat.completions.create(model="assistant", user="a", messages=HELLO)
    assert done.choices[0].finish_reason == "stop"


@pytest.fixture
def fleet(redis_url: str, namespace: str, tmp_path: Path) -> Iterator[Fleet]:
    made = Fleet(redis_url, namespace, tmp_path)
    yield made
    made.stop_all()
    delete_namespace(redis_url, namespace)


def test_all_members_at_capacity_a_new_conversation_answers_503_capacity_exhausted(
    fleet: Fleet, redis_url: str, namespace: str, tmp_path: Path
) -> None:
    fleet.start("m1", capacity=1)  # its one Worker taken by the first conversation
    env = {
        **FAST_ENV,
        "YOI_REDIS_URL": redis_url,
        "YOI_NAMESPACE": namespace,
        "YOI_FLEETS": "fleet",
        "YOI_CHAT_RUNTIME": "fleet",
        "YOI_CAPACITY_WAIT_S": "0.5",
    }
    with running_gateway(tmp_path, token=TOKEN, env=env) as gateway, client(gateway, 0) as ai:
        done = ai.chat.completions.create(model="assistant", user="before", messages=HELLO)
        assert done.choices[0].finish_reason == "stop"

        def full() -> bool:
            with gateway.client() as api:
                rows = api.get("/api/runtimes/fleet/members").json()["members"]
            return [row["hosted"] for row in rows] == [1]

        wait_until_sync(full, timeout_s=15, what="the member's one place taken")
        with gateway.client() as api:
            before = api.get("/api/runtimes/fleet/workers").json()["workers"]
        with pytest.raises(openai.InternalServerError) as raised:
            ai.chat.completions.create(model="assistant", user="after", messages=HELLO)
        response = raised.value.response
        assert_openai_error(response, 503, "capacity_exhausted")
        assert int(response.headers["Retry-After"]) >= 1
        with gateway.client() as api:  # refused before anything was written
            after = api.get("/api/runtimes/fleet/workers").json()["workers"]
        assert after == before
