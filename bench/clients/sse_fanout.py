"""A process full of SSE subscribers for the fan-out scenario; the scenario starts several so
the clients are not the bottleneck, and each reports its own CPU time to show it was not.

Prints `READY` once every subscriber has its response head, then one `RESULT {json}` line when
all have seen the `--until` event (or the deadline passed). A subscriber whose stream ends
early resumes from its last id, as a well-behaved client of a server that sheds slow readers.

Run: python -m bench.clients.sse_fanout --port P --path /…/stream --after C --subscribers N
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field

from bench.rawhttp import HttpError, SseStream

MAX_RESUMES = 5


@dataclass
class Subscriber:
    ids: list[str] = field(default_factory=list)
    done: bool = False
    resumes: int = 0
    first_t: float = 0.0
    last_t: float = 0.0
    error: str | None = None


def _path(base: str, after: str) -> str:
    return f"{base}{'&' if '?' in base else '?'}after={after}"


async def _follow(stream: SseStream, sub: Subscriber, until: str) -> None:
    async for message in stream.events():
        if message.id is None:
            continue
        now = time.monotonic()
        if not sub.ids:
            sub.first_t = now
        sub.ids.append(message.id)
        sub.last_t = now
        if message.event == until:
            sub.done = True
            return


async def _subscribe(
    args: argparse.Namespace, sub: Subscriber, opened: asyncio.Queue[bool]
) -> None:
    stream = SseStream("127.0.0.1", args.port, _path(args.path, args.after))
    try:
        await stream.open()
    except (OSError, HttpError) as exc:
        sub.error = f"open: {type(exc).__name__}: {exc}"
        opened.put_nowait(False)
        return
    opened.put_nowait(True)
    try:
        await _follow(stream, sub, args.until)
        while not sub.done and sub.resumes < MAX_RESUMES:
            await stream.close()
            sub.resumes += 1
            after = sub.ids[-1] if sub.ids else args.after
            stream = SseStream("127.0.0.1", args.port, _path(args.path, after))
            await stream.open()
            await _follow(stream, sub, args.until)
    except (OSError, HttpError, ValueError) as exc:
        sub.error = f"{type(exc).__name__}: {exc}"
    finally:
        await stream.close()


def _report(subs: list[Subscriber]) -> dict[str, object]:
    hashes: dict[str, int] = {}
    for sub in subs:
        digest = hashlib.sha256("\n".join(sub.ids).encode()).hexdigest()[:16]
        hashes[digest] = hashes.get(digest, 0) + 1
    received = [s for s in subs if s.ids]
    return {
        "subscribers": len(subs),
        "done": sum(s.done for s in subs),
        "events": sum(len(s.ids) for s in subs),
        "hashes": hashes,
        "first_t": min((s.first_t for s in received), default=0.0),
        "last_t": max((s.last_t for s in received), default=0.0),
        "resumes": sum(s.resumes for s in subs),
        "errors": [s.error for s in subs if s.error][:5],
        "error_count": sum(1 for s in subs if s.error),
        "cpu_s": time.process_time(),
    }


async def _main(args: argparse.Namespace) -> None:
    subs = [Subscriber() for _ in range(args.subscribers)]
    opened: asyncio.Queue[bool] = asyncio.Queue()
    tasks = {asyncio.create_task(_subscribe(args, sub, opened)) for sub in subs}
    for _ in subs:
        await opened.get()
    print("READY", flush=True)
    _done, pending = await asyncio.wait(tasks, timeout=args.timeout_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    print("RESULT " + json.dumps(_report(subs)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True, help="stream path without `after`")
    parser.add_argument("--after", required=True)
    parser.add_argument("--subscribers", type=int, required=True)
    parser.add_argument("--until", default="run_finished")
    parser.add_argument("--timeout-s", type=float, default=120.0)
    args = parser.parse_args()
    asyncio.run(_main(args))
    sys.exit(0)


if __name__ == "__main__":
    main()
