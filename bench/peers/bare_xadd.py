"""The throughput ceiling: a FastAPI endpoint on Yoi's input route that validates the body and
does one XADD, nothing else. Yoi's input path can only be slower; the ratio says by how much.

Run: python -m bench.peers.bare_xadd --port P --redis-url URL
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from pydantic import BaseModel

from bench.peers.serve import serve


def inputs_key(worker_id: str) -> str:
    return f"bench:bare:inputs:{worker_id}"


class InputBody(BaseModel):
    text: str
    input_id: str | None = None
    strategy: str | None = None


def create_app(redis_url: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.redis = aioredis.Redis.from_url(redis_url)
        try:
            yield
        finally:
            await app.state.redis.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/readyz")
    async def readyz(request: Request) -> dict[str, bool]:
        await request.app.state.redis.ping()
        return {"ready": True}

    @app.post("/api/runtimes/{runtime_id}/workers/{worker_id}/inputs", status_code=202)
    async def send_input(
        runtime_id: str, worker_id: str, body: InputBody, request: Request
    ) -> dict[str, str]:
        input_id = body.input_id or uuid.uuid4().hex
        cursor = await request.app.state.redis.xadd(
            inputs_key(worker_id), {"input_id": input_id, "text": body.text}, maxlen=1000
        )
        return {"input_id": input_id, "cursor": cursor.decode()}

    return app


if __name__ == "__main__":
    serve(create_app)
