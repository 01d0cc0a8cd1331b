"""The `llm` suite's real model server: one llama-server (SmolLM2-135M) for the whole session.

It never skips: without the cached build the suite fails with the command that makes it, and
`./run tests` leaves these tests out (saying so) until `./run llm-tests` has built it once.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from bench.llama_server import MODEL_NAME, LlamaServer, llama_server, ready
from runtime_worker import Runtime
from runtime_worker.profiles import Profile, ProfileRegistry
from shared.settings import Settings

PROFILE = "llm"
MakeRuntime = Callable[..., AbstractAsyncContextManager[Runtime]]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`./run tests` sets YOI_LLM_TESTS=off until the build and the model are there:
    deselect (not skip) them, whatever `-m` the caller passed; ./run has already said so."""
    if os.environ.get("YOI_LLM_TESTS") != "off":
        return
    dropped = [item for item in items if item.get_closest_marker("llm") is not None]
    if dropped:
        items[:] = [item for item in items if item.get_closest_marker("llm") is None]
        config.hook.pytest_deselected(items=dropped)


@pytest.fixture(scope="session")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    if not ready():
        pytest.fail("llama-server is not built: run `./run llm-tests` (builds it once, ~11 min)")
    logs: Path = tmp_path_factory.mktemp("llama-server")
    with llama_server(logs) as server:
        yield server


@pytest.fixture
def make_runtime() -> MakeRuntime:
    """An embedded Runtime whose `llm` profile talks to `base_url` at temperature 0."""

    @asynccontextmanager
    async def build(base_url: str, *, max_tokens: int = 32) -> AsyncIterator[Runtime]:
        registry = ProfileRegistry()
        registry.add(
            Profile(
                name=PROFILE,
                provider="openai",
                model=MODEL_NAME,
                temperature=0.0,
                max_output_tokens=max_tokens,
                history_entries=0,
            )
        )
        settings = Settings(provider="openai", openai_base_url=base_url, flush_interval_ms=5)
        async with Runtime.embedded(settings, profiles=registry) as runtime:
            yield runtime

    return build
