"""The fan-out ceiling: a bare Starlette SSE relay. Each subscriber's request tails the Redis
stream itself (XREAD BLOCK) and sends one chunk per read batch; entries carry `type` and `data`
fields, relayed as `event:` and `data:` with the entry id as `id:`.

Run: python -m bench.peers.sse_relay --port P --redis-url URL
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from bench.peers.serve import serve

BLOCK_MS = 15_000
BATCH = 1000


def _chunk(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> bytes:
    parts = []
    for entry_id, fields in entries:
        parts.append(
            b"id: %s\nevent: %s\ndata: %s\n\n" % (entry_id, fields[b"type"], fields[b"data"])
        )
    return b"".join(parts)


async def _tail(conn: aioredis.Redis, key: str, after: str) -> AsyncIterator[bytes]:
    last: bytes | str = after
    while True:
        batch = await conn.xread({key: last}, count=BATCH, block=BLOCK_MS)
        if not batch:
            yield b": keep-alive\n\n"
            continue
        entries = batch[0][1]
        last = entries[-1][0]
        yield _chunk(entries)


async def stream(request: Request) -> StreamingResponse:
    conn: aioredis.Redis = request.app.state.redis
    after = request.query_params.get("after", "0-0")
    return StreamingResponse(
        _tail(conn, request.path_params["name"], after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )


async def readyz(request: Request) -> JSONResponse:
    await request.app.state.redis.ping()
    return JSONResponse({"ready": True})


def create_app(redis_url: str) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.redis = aioredis.Redis.from_url(redis_url, max_connections=20_000)
        try:
            yield
        finally:
            await app.state.redis.aclose()

    routes = [Route("/readyz", readyz), Route("/streams/{name}", stream)]
    return Starlette(routes=routes, lifespan=lifespan)


if __name__ == "__main__":
    serve(create_app)
