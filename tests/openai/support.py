"""Reading back what the facade did through the gateway's own `/api`: Workers and transcripts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from tests.openai.conftest import Stack

WORKER_HEADER = "x-yoi-worker"


def transcript(stack: Stack, ref: str) -> list[dict[str, Any]]:
    """The transcript entries of the Worker `ref` (`<runtime_id>/<worker_id>`), oldest first."""
    runtime_id, _, worker_id = ref.partition("/")
    with stack.api() as api:
        response = api.get(f"/api/runtimes/{runtime_id}/workers/{worker_id}/transcript")
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


def exchanges(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(role, text) of each entry."""
    return [(entry["role"], entry["text"]) for entry in entries]


def workers(stack: Stack) -> list[dict[str, Any]]:
    with stack.api() as api:
        response = api.get(f"/api/runtimes/{stack.runtime_id}/workers")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["workers"]
    return found


def create_worker(stack: Stack, name: str) -> str:
    with stack.api() as api:
        path = f"/api/runtimes/{stack.runtime_id}/workers"
        response = api.post(path, json={"display_name": name})
    assert response.status_code == 201, response.text
    return str(response.json()["worker_id"])


def events(stack: Stack, ref: str) -> list[dict[str, Any]]:
    runtime_id, _, worker_id = ref.partition("/")
    with stack.api() as api:
        response = api.get(
            f"/api/runtimes/{runtime_id}/workers/{worker_id}/events", params={"limit": 1000}
        )
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["events"]
    return found


class _Response(Protocol):
    """What an httpx response and the one an `openai` error carries both offer."""

    @property
    def status_code(self) -> int: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


def assert_openai_error(response: _Response, status: int, code: str | None) -> dict[str, Any]:
    """The body is exactly OpenAI's error shape, with this status and code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


def sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The `data:` payloads of an OpenAI-style stream's lines, `[DONE]` included, lazily: the
    caller keeps the line iterator (dropping an httpx one closes the connection)."""
    for line in lines:
        if line.startswith("data: "):
            yield line.removeprefix("data: ")
