"""The HTTP + arq peer: the same input path as Yoi built the common way.

POST …/inputs enqueues an arq job; an arq worker process runs it and XADDs the "first delta"
to the Worker's reply stream; the client long-polls GET …/events for it. Routes mirror Yoi's,
so the very same client code measures both.

Run: python -m bench.peers.arq_app --port P --redis-url URL   (workers: bench.peers.arq_worker)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from arq import ArqRedis, create_pool
from arq.connections import RedisSettings
from fastapi import FastAPI, Request
from pydantic import BaseModel

from bench.peers.serve import serve

DONE_KEY = "bench:arq:done"
MAX_WAIT_MS = 30_000


def events_key(worker_id: str) -> str:
    return f"bench:arq:events:{worker_id}"


class InputBody(BaseModel):
    text: str
    input_id: str | None = None
    strategy: str | None = None


async def reply(ctx: dict[str, Any], worker_id: str, input_id: str) -> None:
    """The arq job: write the first delta where the client is waiting, count one completion."""
    conn: ArqRedis = ctx["redis"]
    event = {"type": "text_delta", "input_id": input_id, "text": "hello"}
    async with conn.pipeline(transaction=False) as pipe:
        pipe.xadd(events_key(worker_id), {"json": json.dumps(event)}, maxlen=1000)
        pipe.incr(DONE_KEY)
        await pipe.execute()


def _page(entries: list[tuple[bytes, dict[bytes, bytes]]], after: str) -> dict[str, Any]:
    events = []
    for entry_id, fields in entries:
        event = json.loads(fields[b"json"])
        event["cursor"] = entry_id.decode()
        events.append(event)
    return {"events": events, "cursor": events[-1]["cursor"] if events else after}


def create_app(redis_url: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.arq = await create_pool(RedisSettings.from_dsn(redis_url))
        app.state.redis = aioredis.Redis.from_url(redis_url)
        try:
            yield
        finally:
            await app.state.arq.aclose()
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
        conn: aioredis.Redis = request.app.state.redis
        input_id = body.input_id or uuid.uuid4().hex
        last = await conn.xrevrange(events_key(worker_id), count=1)
        cursor = last[0][0].decode() if last else "0-0"
        await request.app.state.arq.enqueue_job("reply", worker_id, input_id)
        return {"input_id": input_id, "cursor": cursor}

    @app.get("/api/runtimes/{runtime_id}/workers/{worker_id}/events")
    async def events(
        runtime_id: str, worker_id: str, request: Request, after: str = "0-0", wait_ms: int = 0
    ) -> dict[str, Any]:
        conn: aioredis.Redis = request.app.state.redis
        key = events_key(worker_id)
        block = min(max(wait_ms, 0), MAX_WAIT_MS) or None
        batch = await conn.xread({key: after}, count=500, block=block)
        entries = batch[0][1] if batch else []
        return _page(entries, after)

    return app


if __name__ == "__main__":
    serve(create_app)
