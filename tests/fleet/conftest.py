"""Fleet fixtures: member processes and a client on the test's own namespace.

Nothing is flushed: each test's keys live under its namespace and are deleted afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import pytest
import redis

from runtime_worker.runtime import Runtime
from tests.fleet.support import Fleet, fleet_client


def delete_namespace(redis_url: str, namespace: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=2)
    try:
        for pattern in (f"{{{namespace}:*", f"arq:*{{{namespace}:*"):
            batch = list(client.scan_iter(match=pattern, count=1000))
            for start in range(0, len(batch), 500):
                client.delete(*batch[start : start + 500])
    except redis.ConnectionError:
        pass  # a test that stopped its private Redis
    finally:
        client.close()


@pytest.fixture
def fleet(
    redis_url: str, namespace: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Fleet]:
    made = Fleet(redis_url, namespace, tmp_path)
    yield made
    made.stop_all()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(made.logs())
    delete_namespace(redis_url, namespace)


@pytest.fixture
async def client(redis_url: str, namespace: str) -> AsyncIterator[Runtime]:
    rt = fleet_client(redis_url, namespace)
    yield rt
    await rt.aclose()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
