"""The SDK's pieces without a network: following one answer across attempts, the resume
backoff and when it gives up, and building calls (bad input refused before sending)."""

from __future__ import annotations

import json

import httpx
import pytest

from gateway.client import ConnectionFailed, CursorExpired, InvalidInput, RuntimeUnavailable
from gateway.client import _calls as calls
from gateway.client._errors import error_from
from gateway.client._stream import BACKOFF_MAX_S, STREAM_RETRIES, Answer, Resume
from shared.errors import ALL_ERRORS
from shared.events import RunFinished, RunStarted, StateChanged, TextDelta, TextDone, UsageEvent
from shared.ids import new_id
from shared.models import RunResult, WorkerState

WID = new_id()


def test_an_answer_keeps_only_its_current_attempt() -> None:
    answer = Answer("in-1")
    common = {"worker_id": WID, "ts": 0.0, "input_id": "in-1", "run_id": "r"}
    assert not answer.feed(TextDelta(worker_id=WID, ts=0.0, input_id="other", text="x"))
    assert not answer.feed(StateChanged(worker_id=WID, ts=0.0, state=WorkerState.RUNNING))
    answer.feed(RunStarted(attempt=1, **common))
    answer.feed(TextDelta(text="partial ", **common))
    answer.feed(UsageEvent(input_tokens=3, output_tokens=1, **common))
    assert (answer.text, answer.attempt, answer.output_tokens) == ("partial ", 1, 1)
    answer.feed(RunStarted(attempt=2, **common))  # the host was lost: start over
    assert (answer.text, answer.attempt, answer.output_tokens) == ("", 2, 0)
    answer.feed(TextDelta(text="whole ", **common))
    answer.feed(TextDelta(text="answer", **common))
    assert answer.text == "whole answer" and not answer.done
    answer.feed(TextDone(text="whole answer", **common))
    answer.feed(RunFinished(result=RunResult.FINISHED, **common))
    assert answer.done and answer.finished is not None


def test_resume_backs_off_resets_on_progress_and_gives_up() -> None:
    resume = Resume("http://127.0.0.1:1", "5-0")
    assert resume.headers() == {"Last-Event-ID": "5-0"}
    delays = [resume.dropped(httpx.ReadError("cut")) for _ in range(STREAM_RETRIES)]
    assert delays == sorted(delays) and delays[-1] <= BACKOFF_MAX_S
    with pytest.raises(ConnectionFailed):
        resume.dropped(httpx.ReadError("cut"))
    resume.seen("6-0")  # an event came through: the connection works again
    assert resume.headers() == {"Last-Event-ID": "6-0"}
    assert resume.dropped(None) == delays[0]  # a clean end (the gateway closed it): resume
    with pytest.raises(CursorExpired):  # not retryable: a gap is never hidden
        resume.dropped(CursorExpired("trimmed", oldest_cursor="9-0"))
    busy = RuntimeUnavailable("down")
    busy.retry_after_s = 1.5
    assert resume.dropped(busy) == 1.5  # the wait the gateway asked for


def test_calls_validate_before_sending() -> None:
    call = calls.send(calls.worker_path("fleet", WID), "hi", None, None)
    assert call.body is not None and call.body["text"] == "hi"
    assert len(call.body["input_id"]) == 32  # generated: a retry never runs it twice
    assert calls.send(calls.COMPANION, "hi", "k-1", "enqueue").path == "/api/companion/messages"
    assert calls.worker_path("a/b", "../x") == "/api/runtimes/a%2Fb/workers/..%2Fx"
    assert not calls.create_worker("fleet", "bob", None, None, None).idempotent
    with pytest.raises(InvalidInput) as caught:
        calls.send(calls.COMPANION, "", None, None)
    assert caught.value.message.startswith("invalid text: ")


def test_every_wire_code_raises_its_class() -> None:
    for cls in ALL_ERRORS:
        body = {"error": {"code": cls.code, "message": "m", "retryable": not cls.retryable_default}}
        if cls is CursorExpired:
            body["error"]["oldest_cursor"] = "7-0"
        error = error_from(cls.http_status, {}, json.dumps(body).encode())
        assert type(error) is cls
        assert error.retryable is (not cls.retryable_default)  # as the gateway said
        assert not isinstance(error, CursorExpired) or error.oldest_cursor == "7-0"
