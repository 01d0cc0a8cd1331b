"""Fixtures of the gateway suite: Settings that ignore the environment, and a running app."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from shared.settings import Settings
from tests.gateway.support import running_app, settings_for


@pytest.fixture
def settings(namespace: str, request: pytest.FixtureRequest) -> Settings:
    # Failure hooks (`/slow`, `/fail`) exist only in the chaos provider, chosen per test.
    chaos = request.node.get_closest_marker("chaos") is not None
    return settings_for(namespace, provider="chaos" if chaos else "echo")


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with running_app(settings) as pair:
        yield pair


@pytest.fixture
def app(gateway: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    return gateway[0]


@pytest.fixture
def client(gateway: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return gateway[1]
