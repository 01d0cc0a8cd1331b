"""The `runtime` command: one definition for `yoi runtime` and `python -m runtime_worker`.

It lives here, not in `gateway.cli`, so `python -m runtime_worker` needs nothing above this
package; `gateway.cli` registers the same function, so both spell every flag alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, NoReturn

import typer

from shared import aio, tracing
from shared.errors import YoiError
from shared.logs import setup_logging_from
from shared.settings import InvalidSettings, load_settings

USAGE = 2
FAILED = 1
INTERRUPTED = 130
log = logging.getLogger("yoi.member")

RedisUrl = Annotated[
    str | None,
    typer.Option("--redis-url", help="Redis URL (default: YOI_REDIS_URL or REDIS_URL)."),
]
LogLevel = Annotated[
    str | None,
    typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR (default: YOI_LOG_LEVEL)."),
]


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"yoi: {message}", err=True)
    raise typer.Exit(code)


def runtime(
    redis_url: RedisUrl = None,
    runtime_id: Annotated[str | None, typer.Option(help="The fleet runtime to serve.")] = None,
    capacity: Annotated[int | None, typer.Option(help="Most Workers this process hosts.")] = None,
    namespace: Annotated[str | None, typer.Option(help="Redis key namespace.")] = None,
    member_id: Annotated[
        str | None, typer.Option(help="This member's id (default: <host>-<pid>-<random>).")
    ] = None,
    log_level: LogLevel = None,
) -> None:
    """Run one runtime process (a member of a fleet runtime) until SIGTERM or Ctrl-C."""
    from runtime_worker.member import run_member

    try:
        settings = load_settings(
            redis_url=redis_url,
            runtime_id=runtime_id,
            capacity=capacity,
            namespace=namespace,
            member_id=member_id,
            log_level=log_level,
        )
    except InvalidSettings as exc:
        _fail(str(exc), USAGE)
    if settings.redis_url is None:
        _fail("a runtime process needs Redis: pass --redis-url or set YOI_REDIS_URL", USAGE)
    setup_logging_from(settings)
    tracing.configure("yoi-runtime")  # only when OTEL_* asks for traces
    try:
        aio.run(run_member(settings))
    except YoiError as exc:
        log.error("member failed: %s", exc.code)
        _fail(f"the runtime process failed: {exc.message} ({exc.code})", FAILED)
    except KeyboardInterrupt:  # a second Ctrl-C during the graceful stop
        raise typer.Exit(INTERRUPTED) from None
    except Exception as exc:
        log.error("member failed: %s", type(exc).__name__)
        raise typer.Exit(FAILED) from None


def command_app(command: Callable[..., None]) -> typer.Typer:
    """A Typer app of one command, for `python -m runtime_worker` and `python -m gateway`."""
    app = typer.Typer(
        add_completion=False,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.command()(command)
    return app


def main(argv: list[str] | None = None) -> None:
    """`python -m runtime_worker`: the `runtime` command alone."""
    command_app(runtime)(args=argv, prog_name="python -m runtime_worker")
