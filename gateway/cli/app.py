"""`yoi`: the command line of Yoi Fleet (console script `yoi = gateway.cli:main`).

The root command (`--gateway`, `--token`, `--version`) and the list of commands; each command
lives in the module of its group (`servers`, `workers`, `messages`, `events`, `chat`,
`operators`, `schedules`, and `runtime_worker.command`), which imports heavy parts lazily so
`yoi workers` does not pay for uvicorn or the provider clients.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from gateway.cli import chat, events, messages, operators, schedules, servers, workers
from gateway.cli.client import Target
from gateway.cli.errors import EXIT_CODES_HELP, USAGE, CliFailure, interruptible
from gateway.cli.render import safe
from gateway.client._retry import REFUSALS
from runtime_worker import command as runtime_command
from runtime_worker.runtime import VERSION

DEFAULT_GATEWAY = "http://127.0.0.1:8000"
GLOBAL_OPTIONS = ("--gateway", "--token", "--retries")


def hoist_global_options(args: Sequence[str]) -> list[str]:
    """Move the global options (and their values) found after the command to the front, where
    click expects group options; `--` ends the hoisting (what follows is data)."""
    front: list[str] = []
    rest: list[str] = []
    index = 0
    seen_command = False
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest.extend(args[index:])
            break
        name = arg.split("=", 1)[0]
        if seen_command and name in GLOBAL_OPTIONS:
            takes_next = "=" not in arg and index + 1 < len(args)
            front.extend(args[index : index + 2] if takes_next else [arg])
            index += 2 if takes_next else 1
            continue
        if not seen_command and not arg.startswith("-"):
            seen_command = True
        elif not seen_command and name in GLOBAL_OPTIONS and "=" not in arg:
            rest.extend(args[index : index + 2])  # a leading global option and its value
            index += 2
            continue
        rest.append(arg)
        index += 1
    return front + rest


app = typer.Typer(
    help="Yoi Fleet: conversational LLM workers on a Redis-coordinated fleet.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"yoi {VERSION}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    gateway: Annotated[
        str, typer.Option("--gateway", envvar="YOI_GATEWAY", help="The gateway's base URL.")
    ] = DEFAULT_GATEWAY,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", envvar="YOI_API_TOKEN", show_default=False, help="The gateway's API token."
        ),
    ] = None,
    retries: Annotated[
        int,
        typer.Option(
            "--retries",
            envvar="YOI_RETRIES",
            min=0,
            help="How often a 429/503 with Retry-After is waited out and sent again.",
        ),
    ] = REFUSALS,
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    if not gateway.startswith(("http://", "https://")):
        raise CliFailure(f"--gateway must be an http(s) URL, not {gateway!r}", USAGE)
    ctx.obj = Target(gateway.rstrip("/"), token or None, retries)


for command in (
    chat.chat,
    servers.gateway,
    runtime_command.runtime,
    servers.up,
    workers.runtimes,
    workers.workers,
    workers.create,
    messages.send,
    messages.cancel,
    events.tail,
    workers.transcript,
    schedules.schedule,
    schedules.schedules,
    schedules.unschedule,
    operators.members,
    operators.drain,
    operators.worker,
):
    app.command()(interruptible(command))


def run(typer_app: typer.Typer, args: Sequence[str], prog_name: str) -> None:
    """Run a Typer app as a console script: a `CliFailure` is one `yoi: …` line and its code."""
    try:
        typer_app(args=list(args), prog_name=prog_name)
    except CliFailure as exc:
        sys.stdout.flush()
        print(f"yoi: {safe(exc.message)}", file=sys.stderr)
        sys.exit(exc.exit_code)


def main(argv: Sequence[str] | None = None) -> None:
    """The console script: global options may follow the command; failures exit with a code."""
    run(app, hoist_global_options(sys.argv[1:] if argv is None else argv), "yoi")
