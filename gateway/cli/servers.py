"""Commands that run the system: `yoi gateway` (also `python -m gateway`) and `yoi up`.

`yoi runtime` is `runtime_worker.command.runtime`, registered beside these. Each sets up the
one logging configuration (`shared.logs`) from the settings before it starts anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from gateway.cli.errors import USAGE, CliFailure
from gateway.cli.options import LogLevel, RedisUrl
from shared.errors import YoiError
from shared.logs import setup_logging_from
from shared.settings import InvalidSettings, Settings, load_settings


def settings_from(**flags: Any) -> Settings:
    """Settings from the environment with the given flags on top; a bad one exits 2."""
    try:
        return load_settings(**flags)
    except InvalidSettings as exc:
        raise CliFailure(str(exc), USAGE) from None


Ephemeral = Annotated[
    bool,
    typer.Option(
        "--ephemeral", help="Keep nothing: Workers in memory (or a temp dir, deleted at the end)."
    ),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Where Workers are kept (default: YOI_DATA_DIR, else per-user)."
    ),
]


def with_data_dir(settings: Settings, data_dir: Path | None, ephemeral: bool) -> Settings:
    if ephemeral and data_dir is not None:
        raise CliFailure("--ephemeral and --data-dir exclude each other", USAGE)
    if ephemeral:
        return settings.model_copy(update={"data_dir": None})
    if data_dir is not None:
        return settings.model_copy(update={"data_dir": data_dir})
    return settings


def gateway(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    redis_url: RedisUrl = None,
    fleet: Annotated[
        list[str] | None,
        typer.Option(help="Fleet runtime id(s) to serve, comma-separated; repeatable."),
    ] = None,
    log_level: LogLevel = None,
    data_dir: DataDirOption = None,
    ephemeral: Ephemeral = False,
) -> None:
    """Run the HTTP gateway (with the embedded runtime, and fleet runtimes when Redis is set)."""
    from gateway.auth import UnsafeConfig
    from gateway.registry import check_embedded_store
    from gateway.server import serve

    fleets = ",".join(fleet) if fleet else None
    settings = settings_from(
        host=host, port=port, redis_url=redis_url, fleets=fleets, log_level=log_level
    )
    settings = with_data_dir(settings, data_dir, ephemeral)
    setup_logging_from(settings)
    try:
        check_embedded_store(settings)
    except YoiError as exc:
        raise CliFailure(exc.message) from None
    # For the person starting it, never logged (a path is no log line's business): where the
    # Companion's conversation lives. Not in JSON mode, whose output is only JSON lines.
    if settings.log_format != "json":
        if settings.data_dir is None:
            typer.echo("embedded Workers: in memory only (gone when the gateway stops)")
        else:
            typer.echo(f"embedded Workers: kept in {settings.data_dir}")
    try:
        serve(settings)
    except UnsafeConfig as exc:
        raise CliFailure(str(exc), USAGE) from None


def up(
    processes: Annotated[
        int | None, typer.Option(help="Runtime processes to start (default: YOI_PROCESSES, 2).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Gateway address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Gateway port.")] = None,
    redis_url: RedisUrl = None,
    log_level: LogLevel = None,
    data_dir: DataDirOption = None,
    ephemeral: Ephemeral = False,
) -> None:
    """Start everything on this machine: Redis (private unless given), gateway, runtimes.

    What they keep (the private Redis's append-only file, the embedded Workers) lives in the
    data directory, held by one `yoi up` at a time; --ephemeral uses a temporary one."""
    from gateway.cli.supervisor import up as run_up

    settings = settings_from(
        host=host, port=port, redis_url=redis_url, processes=processes, log_level=log_level
    )
    settings = with_data_dir(settings, data_dir, ephemeral)
    if settings.port == 0:
        raise CliFailure("yoi up needs a fixed --port (it prints the console address)", USAGE)
    setup_logging_from(settings)
    raise typer.Exit(run_up(settings, settings.processes))
