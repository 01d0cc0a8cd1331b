"""`yoi chat`: a terminal conversation with a Worker on an embedded runtime (no gateway, no HTTP).

`input()` blocks, so each prompt is read on a daemon thread while the event loop stays free to
run the answer and to handle Ctrl-C: during an answer it cancels the run, at the prompt it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import AsyncGenerator
from typing import Any, cast

import typer

from runtime_worker.runtime import Runtime
from shared.errors import YoiError
from shared.events import Event
from shared.models import CreateWorker, InputAccepted, RunResult, SendInput
from shared.settings import Settings

PROMPT = "you> "
STDIN_FD = 0


class LineSource:
    """Lines typed at the prompt. A terminal goes through `input()` (line editing; it holds no
    Python lock while it waits); a pipe or file is read with `os.read`, because a daemon thread
    blocked inside the buffered `sys.stdin` makes the interpreter abort at exit."""

    def __init__(self) -> None:
        self.tty = sys.stdin is not None and sys.stdin.isatty()
        self._pending = b""

    def read(self, prompt: str) -> str | None:
        """One line without its end; None at end of input (Ctrl-D, closed pipe)."""
        if self.tty:
            try:
                return input(prompt)
            except (EOFError, OSError, ValueError):  # ValueError: stdin closed under us
                return None
        while b"\n" not in self._pending:
            try:
                chunk = os.read(STDIN_FD, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                line, self._pending = self._pending, b""
                return line.decode(errors="replace") if line else None
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode(errors="replace").removesuffix("\r")

    def ask(self, loop: asyncio.AbstractEventLoop, prompt: str) -> asyncio.Future[str | None]:
        """Read one line on a daemon thread, so the event loop stays free meanwhile."""
        future: asyncio.Future[str | None] = loop.create_future()
        if not self.tty:
            typer.echo(prompt, nl=False)

        def settle(line: str | None) -> None:
            if not future.done():
                future.set_result(line)

        def work() -> None:
            line = self.read(prompt)
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
                loop.call_soon_threadsafe(settle, line)

        threading.Thread(target=work, name="yoi-chat-input", daemon=True).start()
        return future


class ChatSession:
    """One person, one Worker: prompt, stream the answer, repeat."""

    def __init__(self, runtime: Runtime, worker_id: str) -> None:
        self.runtime = runtime
        self.worker_id = worker_id
        self._quit = asyncio.Event()
        self._answering = False
        self._cancel_requested = False
        self._cancels: set[asyncio.Task[object]] = set()

    def on_interrupt(self) -> None:
        """Ctrl-C: cancel the answer in progress, or leave when at the prompt."""
        if not self._answering:
            self._quit.set()
            return
        self._cancel_requested = True
        self._cancel()

    def _cancel(self) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(self.runtime.cancel(self.worker_id))
        self._cancels.add(task)
        task.add_done_callback(self._cancels.discard)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        source = LineSource()
        quit_wait = asyncio.ensure_future(self._quit.wait())
        try:
            while True:
                line_future = source.ask(loop, PROMPT)
                waits: set[asyncio.Future[Any]] = {line_future, quit_wait}
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if not line_future.done():  # Ctrl-C at the prompt
                    typer.echo()
                    return
                line = line_future.result()
                if line is None:  # end of input
                    if source.tty:
                        typer.echo()
                    return
                if line.strip():
                    await self._answer(line)
        finally:
            quit_wait.cancel()
            await asyncio.gather(quit_wait, *self._cancels, return_exceptions=True)

    async def _answer(self, text: str) -> None:
        self._answering, self._cancel_requested = True, False
        try:
            accepted = await self.runtime.send_input(self.worker_id, SendInput(text=text))
            if self._cancel_requested:  # Ctrl-C came before the input was accepted
                self._cancel()
            await self._stream(accepted)
        except YoiError as exc:
            typer.echo(f"yoi: {exc.message} ({exc.code})", err=True)
        finally:
            self._answering = False

    async def _stream(self, accepted: InputAccepted) -> None:
        at_line_start, error = True, ""
        # `subscribe` is an async generator: close it so its pending read ends with the answer.
        events = cast(
            "AsyncGenerator[Event, None]",
            self.runtime.subscribe(self.worker_id, after=accepted.cursor),
        )
        async with contextlib.aclosing(events):
            async for event in events:
                if event.input_id != accepted.input_id:
                    continue
                if event.type == "text_delta":
                    typer.echo(event.text, nl=False)
                    sys.stdout.flush()
                    at_line_start = event.text.endswith("\n")
                elif event.type == "error":
                    error = f": {event.message}"
                elif event.type == "run_finished":
                    if not at_line_start:
                        typer.echo()
                    if event.result != RunResult.FINISHED:
                        typer.echo(f"[{event.result.value}{error}]", err=True)
                    return


async def chat(settings: Settings, profile: str) -> None:
    async with Runtime.embedded(settings) as runtime:
        worker = await runtime.create_worker(CreateWorker(display_name=profile, profile=profile))
        typer.echo(
            f"Chatting with {worker.display_ref} (profile {worker.profile}). "
            "Ctrl-C stops an answer; Ctrl-D or Ctrl-C at the prompt leaves.",
            err=True,
        )
        session = ChatSession(runtime, worker.worker_id)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, session.on_interrupt)
        try:
            await session.run()
        finally:
            loop.remove_signal_handler(signal.SIGINT)
