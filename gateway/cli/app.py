"""`yoi`: the command line of Yoi Fleet (console script `yoi = gateway.cli:main`).

Commands are thin: they parse flags into `Settings` or a gateway `Target` and call the module
that does the work (`supervisor`, `chat`, `api`, `tail_redis`), importing it lazily so
`yoi workers` does not pay for uvicorn and `yoi up` does not pay for the runtime engine.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from gateway.cli.client import Target
from gateway.cli.errors import EXIT_CODES_HELP, USAGE, CliFailure
from shared import aio
from shared.errors import YoiError
from shared.models import Strategy
from shared.settings import Settings

DEFAULT_GATEWAY = "http://127.0.0.1:8000"
GLOBAL_OPTIONS = ("--gateway", "--token")


def hoist_global_options(args: Sequence[str]) -> list[str]:
    """Move `--gateway`/`--token` (and their values) found after the command to the front,
    where click expects group options; `--` ends the hoisting (what follows is data)."""
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
) -> None:
    if not gateway.startswith(("http://", "https://")):
        raise CliFailure(f"--gateway must be an http(s) URL, not {gateway!r}", USAGE)
    ctx.obj = Target(gateway.rstrip("/"), token or None)


def _target(ctx: typer.Context) -> Target:
    target = ctx.find_root().obj
    assert isinstance(target, Target)
    return target


def _settings(**flags: Any) -> Settings:
    """Settings from the environment, with the flags that were given taking precedence."""
    try:
        return Settings(**{name: value for name, value in flags.items() if value is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "settings"
        raise CliFailure(f"invalid {where}: {first['msg']}", USAGE) from None


RedisUrl = Annotated[
    str | None,
    typer.Option("--redis-url", help="Redis URL (default: YOI_REDIS_URL or REDIS_URL)."),
]


# -- local: chat, processes ----------------------------------------------------------------------


@app.command()
def chat(
    profile: Annotated[str, typer.Option(help="The Worker's profile.")] = "companion",
) -> None:
    """Talk with a Worker on an embedded runtime in this terminal (no gateway needed)."""
    from gateway.cli.chat import chat as run_chat

    try:
        asyncio.run(run_chat(_settings(), profile))
    except YoiError as exc:
        raise CliFailure(f"{exc.message} ({exc.code})") from None


@app.command()
def gateway(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    redis_url: RedisUrl = None,
    fleet: Annotated[
        str | None, typer.Option(help="Fleet runtime id(s) to serve, comma-separated.")
    ] = None,
) -> None:
    """Run the HTTP gateway (with the embedded runtime, and fleet runtimes when Redis is set)."""
    from gateway.auth import UnsafeConfig
    from gateway.server import serve

    try:
        serve(_settings(host=host, port=port, redis_url=redis_url, fleets=fleet))
    except UnsafeConfig as exc:
        raise CliFailure(str(exc), USAGE) from None


@app.command()
def runtime(
    redis_url: RedisUrl = None,
    runtime_id: Annotated[str | None, typer.Option(help="The fleet runtime to serve.")] = None,
    capacity: Annotated[int | None, typer.Option(help="Most Workers this process hosts.")] = None,
    namespace: Annotated[str | None, typer.Option(help="Redis key namespace.")] = None,
) -> None:
    """Run one runtime process (a member of a fleet runtime) until SIGTERM or Ctrl-C."""
    from runtime_worker.member import run_member

    settings = _settings(
        redis_url=redis_url, runtime_id=runtime_id, capacity=capacity, namespace=namespace
    )
    if settings.redis_url is None:
        raise CliFailure("a runtime process needs Redis: pass --redis-url or set REDIS_URL", USAGE)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("arq").setLevel(logging.WARNING)  # its job lines carry user text
    try:
        aio.run(run_member(settings))
    except YoiError as exc:
        raise CliFailure(f"the runtime process failed: {exc.message} ({exc.code})") from None


@app.command()
def up(
    processes: Annotated[
        int | None, typer.Option(help="Runtime processes to start (default: YOI_PROCESSES, 2).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Gateway address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Gateway port.")] = None,
    redis_url: RedisUrl = None,
) -> None:
    """Start everything on this machine: Redis (private unless given), gateway, runtimes."""
    from gateway.cli.supervisor import up as run_up

    settings = _settings(host=host, port=port, redis_url=redis_url, processes=processes)
    if settings.port == 0:
        raise CliFailure("yoi up needs a fixed --port (it prints the console address)", USAGE)
    raise typer.Exit(run_up(settings, settings.processes))


# -- through the gateway -------------------------------------------------------------------------


@app.command()
def runtimes(ctx: typer.Context) -> None:
    """List the runtimes."""
    from gateway.cli.api import list_runtimes

    list_runtimes(_target(ctx))


@app.command()
def workers(
    ctx: typer.Context,
    runtime_id: Annotated[str | None, typer.Argument(help="Only this runtime's.")] = None,
) -> None:
    """List the Workers (of every runtime, or of one)."""
    from gateway.cli.api import list_workers

    list_workers(_target(ctx), runtime_id)


@app.command()
def create(
    ctx: typer.Context,
    runtime_id: Annotated[str, typer.Argument(metavar="RUNTIME")],
    name: Annotated[str, typer.Argument(help="The display name.")],
    profile: Annotated[str | None, typer.Option(help="Profile (default: the runtime's).")] = None,
) -> None:
    """Create a Worker on a runtime."""
    from gateway.cli.api import create as run_create

    run_create(_target(ctx), runtime_id, name, profile)


Ref = Annotated[str, typer.Argument(metavar="REF", help="RUNTIME/WORKER_ID or NAME@RUNTIME.")]


@app.command()
def send(
    ctx: typer.Context,
    ref: Ref,
    text: Annotated[str, typer.Argument(help="The message.")],
    strategy: Annotated[
        Strategy | None, typer.Option(help="When the worker is busy (default: its profile's).")
    ] = None,
    input_id: Annotated[str | None, typer.Option(help="Idempotency key.")] = None,
) -> None:
    """Send a message and stream the answer as it is generated."""
    from gateway.cli.api import send as run_send

    run_send(
        _target(ctx),
        ref,
        text,
        strategy=None if strategy is None else strategy.value,
        input_id=input_id,
    )


@app.command()
def cancel(ctx: typer.Context, ref: Ref) -> None:
    """Cancel the Worker's current answer."""
    from gateway.cli.api import cancel as run_cancel

    run_cancel(_target(ctx), ref)


@app.command()
def tail(
    ctx: typer.Context,
    ref: Ref,
    after: Annotated[
        str | None, typer.Option(help="Start after this cursor (default: the oldest kept).")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events.")
    ] = False,
    redis_url: Annotated[
        str | None,
        typer.Option(help="Read the events stream straight from Redis instead of the gateway."),
    ] = None,
    namespace: Annotated[str | None, typer.Option(help="Key namespace (with --redis-url).")] = None,
    runtime_id: Annotated[
        str | None, typer.Option(help="Runtime of a bare worker id REF (with --redis-url).")
    ] = None,
) -> None:
    """Print a Worker's events, one line each: cursor, type, payload."""
    if redis_url is None:
        if namespace is not None or runtime_id is not None:
            raise CliFailure("--namespace and --runtime-id go with --redis-url", USAGE)
        from gateway.cli.api import tail as run_tail

        run_tail(_target(ctx), ref, after=after, follow=follow)
        return
    from gateway.cli.tail_redis import tail_redis

    settings = _settings(redis_url=redis_url, namespace=namespace)
    tail_redis(settings, ref, runtime_id=runtime_id, after=after, follow=follow)


@app.command()
def transcript(
    ctx: typer.Context,
    ref: Ref,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Most entries to show.")] = 50,
    before: Annotated[str | None, typer.Option(help="Entries before this cursor.")] = None,
) -> None:
    """Print the Worker's transcript (oldest first)."""
    from gateway.cli.api import transcript as run_transcript

    run_transcript(_target(ctx), ref, limit=limit, before=before)


def main(argv: Sequence[str] | None = None) -> None:
    """The console script: global options may follow the command; failures exit with a code."""
    args = hoist_global_options(sys.argv[1:] if argv is None else argv)
    try:
        app(args=args, prog_name="yoi")
    except CliFailure as exc:
        sys.stdout.flush()
        print(f"yoi: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
