"""A process that embeds a durable runtime, sends one long input and reports the answer started.

`python -m tests.durable.child <store path> <profile>`: prints `worker <id>` and `input <id>`,
then `streaming` once the first text delta of the answer is stored, and keeps answering until
the test kills it (SIGKILL: nothing of the runtime's shutdown runs).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from runtime_worker.runtime import Runtime
from shared.models import CreateWorker, SendInput
from shared.settings import Settings
from tests.durable.support import LONG_TEXT, profiles


async def main(path: Path, profile: str) -> None:
    settings = Settings(echo_delay_ms=100, flush_interval_ms=0, data_dir=None)
    async with Runtime.embedded(settings, path=path, profiles=profiles()) as runtime:
        worker = await runtime.create_worker(CreateWorker(display_name="d", profile=profile))
        accepted = await runtime.send_input(worker.worker_id, SendInput(text=LONG_TEXT))
        print(f"worker {worker.worker_id}", flush=True)
        print(f"input {accepted.input_id}", flush=True)
        after = accepted.cursor
        while True:
            page = await runtime.events(worker.worker_id, after=after, wait_ms=1000)
            after = page.cursor
            if any(e.type == "text_delta" for e in page.events):
                print("streaming", flush=True)
                await asyncio.Event().wait()  # answer on until killed


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
