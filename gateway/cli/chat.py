"""`yoi chat`: a terminal conversation with a Worker on an embedded runtime (no gateway, no HTTP).

In a terminal the prompt is prompt_toolkit's (line editing, history of this session), read on
the event loop; while an answer streams, the terminal's echo is off, so keys typed meanwhile do
not land inside the answer: they wait and appear in the next prompt. Through a pipe, lines are
read on a daemon thread. Ctrl-C during an answer cancels it; at the prompt it leaves (exit 130);
Ctrl-D or the end of input leaves (exit 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import AsyncGenerator, Iterator
from typing import Annotated, Any, cast

import typer

from gateway.cli.errors import INTERRUPTED, CliFailure
from gateway.cli.render import safe
from runtime_worker.runtime import Runtime
from shared.errors import YoiError
from shared.events import Event
from shared.models import CreateWorker, InputAccepted, RunResult, SendInput
from shared.settings import Settings

PROMPT = "you> "
STDIN_FD = 0


class PipeLines:
    """Lines from a pipe or file, read with `os.read`: a daemon thread blocked inside the
    buffered `sys.stdin` makes the interpreter abort at exit."""

    def __init__(self) -> None:
        self._pending = b""

    def read(self) -> str | None:
        """One line without its end; None at end of input (closed pipe)."""
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
        typer.echo(prompt, nl=False)

        def settle(line: str | None) -> None:
            if not future.done():
                future.set_result(line)

        def work() -> None:
            line = self.read()
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
                loop.call_soon_threadsafe(settle, line)

        threading.Thread(target=work, name="yoi-chat-input", daemon=True).start()
        return future


class TerminalLines:
    """The prompt in a terminal: prompt_toolkit's line editing and this session's history."""

    def __init__(self) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import InMemoryHistory

        self._session: PromptSession[str] = PromptSession(history=InMemoryHistory())

    def ask(self, loop: asyncio.AbstractEventLoop, prompt: str) -> asyncio.Future[str | None]:
        """The next line; None on Ctrl-D; a KeyboardInterrupt result on Ctrl-C."""

        async def read() -> str | None:
            try:
                return await self._session.prompt_async(prompt, handle_sigint=False)
            except EOFError:
                return None

        return loop.create_task(read())


def _is_tty() -> bool:
    return sys.stdin is not None and sys.stdin.isatty() and sys.stdout.isatty()


@contextlib.contextmanager
def _no_echo() -> Iterator[None]:
    """While an answer streams, keys typed are not echoed into it; the terminal keeps them for
    the next prompt, which shows them. Ctrl-C still signals (ISIG stays on)."""
    if not _is_tty():
        yield
        return
    import termios

    before = termios.tcgetattr(STDIN_FD)
    quiet = list(before)
    quiet[3] &= ~termios.ECHO  # lflags
    termios.tcsetattr(STDIN_FD, termios.TCSANOW, quiet)
    try:
        yield
    finally:
        termios.tcsetattr(STDIN_FD, termios.TCSANOW, before)


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

    async def run(self) -> int:
        """Prompt and answer until the person leaves: 0 at end of input, 130 on Ctrl-C."""
        loop = asyncio.get_running_loop()
        source: PipeLines | TerminalLines = TerminalLines() if _is_tty() else PipeLines()
        quit_wait = asyncio.ensure_future(self._quit.wait())
        try:
            while True:
                line_future = source.ask(loop, PROMPT)
                waits: set[asyncio.Future[Any]] = {line_future, quit_wait}
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if not line_future.done() or line_future.exception() is not None:
                    line_future.cancel()  # Ctrl-C at the prompt
                    await asyncio.gather(line_future, return_exceptions=True)
                    typer.echo()
                    return INTERRUPTED
                line = line_future.result()
                if line is None:  # end of input
                    if isinstance(source, TerminalLines):
                        typer.echo()
                    return 0
                if line.strip():
                    with _no_echo():
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
            typer.echo(f"yoi: {safe(exc.message)} ({exc.code})", err=True)
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
                    typer.echo(safe(event.text, multiline=True), nl=False)
                    sys.stdout.flush()
                    at_line_start = event.text.endswith("\n")
                elif event.type == "error":
                    error = f": {safe(event.message)}"
                elif event.type == "run_finished":
                    if not at_line_start:
                        typer.echo()
                    if event.result != RunResult.FINISHED:
                        typer.echo(f"[{event.result.value}{error}]", err=True)
                    return


def chat(
    profile: Annotated[str, typer.Option(help="The Worker's profile.")] = "companion",
) -> None:
    """Talk with a Worker on an embedded runtime in this terminal (no gateway needed)."""
    from gateway.cli.servers import settings_from

    try:
        code = asyncio.run(_chat(settings_from(), profile))
    except YoiError as exc:
        raise CliFailure(f"{exc.message} ({exc.code})") from None
    if code:
        raise typer.Exit(code)


async def _chat(settings: Settings, profile: str) -> int:
    async with Runtime.embedded(settings) as runtime:
        worker = await runtime.create_worker(CreateWorker(display_name=profile, profile=profile))
        typer.echo(
            safe(
                f"Chatting with {worker.display_ref} (profile {worker.profile}). "
                "Ctrl-C stops an answer; Ctrl-D or Ctrl-C at the prompt leaves."
            ),
            err=True,
        )
        session = ChatSession(runtime, worker.worker_id)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, session.on_interrupt)
        try:
            return await session.run()
        finally:
            loop.remove_signal_handler(signal.SIGINT)
