"""`hotpath`: gateway CPU per request on the three hot routes (POST inputs, GET events with no
wait, POST create), in-process through the whole ASGI app over the embedded runtime, measured
with `time.process_time` so other engineers' load on the cores does not count (only cache and
frequency effects do). The number to watch when making the one path fast (STYLE rule 16)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

from bench.harness import Context
from bench.hotpath_driver import Answer, call
from bench.results import ScenarioResult
from gateway.app import create_app
from shared.settings import Settings

BASE = "/api/runtimes/backend-internal/workers"
WARMUP = 50


def bench_settings() -> Settings:
    """Embedded, ephemeral, echo provider, no token: the environment plays no part."""
    return Settings(
        namespace="bench-hotpath",
        host="127.0.0.1",
        api_token=None,
        redis_url=None,
        fleets=[],
        cors_origins=[],
        echo_delay_ms=0,
        profiles_dir=None,
        openai_api_key=None,
        data_dir=None,
        log_level="WARNING",
        # Every input of a round goes to one Worker, queued behind the runs before it: the
        # default bound (1,000) would answer the full size's later inputs 429.
        max_queued_inputs=100_000,
    )


async def _per_request_us(
    count: int, one: Callable[[int], Awaitable[Answer]], expect: int
) -> float:
    for i in range(WARMUP):
        await one(-1 - i)
    started = time.process_time()
    for i in range(count):
        answer = await one(i)
        if answer.status != expect:
            raise RuntimeError(f"answered {answer.status}, not {expect}: {bytes(answer.body)!r}")
    return (time.process_time() - started) / count * 1e6


async def measure(count: int) -> dict[str, float]:
    """µs of process CPU per request for each hot route (runs the inputs start included)."""
    app = create_app(bench_settings())
    async with app.router.lifespan_context(app):
        created = await call(app, "POST", BASE, body=b'{"display_name": "bench"}')
        worker = json.loads(created.body)["worker_id"]
        inputs_path = f"{BASE}/{worker}/inputs"
        events_path = f"{BASE}/{worker}/events"

        async def send_input(i: int) -> Answer:
            body = json.dumps({"text": f"hello {i}", "strategy": "enqueue"}).encode()
            return await call(app, "POST", inputs_path, body=body)

        async def read_events(_i: int) -> Answer:
            return await call(app, "GET", events_path, query=b"limit=10&wait_ms=0")

        async def create(i: int) -> Answer:
            return await call(app, "POST", BASE, body=b'{"display_name": "b%d"}' % i)

        # Create last, so thousands of Workers do not weigh on the other two.
        return {
            "post_inputs_us": await _per_request_us(count, send_input, 202),
            "get_events_us": await _per_request_us(count, read_events, 200),
            "post_create_us": await _per_request_us(count, create, 201),
        }


def run(ctx: Context, result: ScenarioResult) -> None:
    count = ctx.pick(2000, 300)
    result.metrics.update(asyncio.run(measure(count)))
    result.metrics["requests_per_route"] = count
    result.notes.append("process CPU time per request, in-process ASGI, embedded runtime")
