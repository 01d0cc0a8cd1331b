"""Flags several command groups share, declared once so every command spells them alike."""

from __future__ import annotations

from typing import Annotated

import typer

Json = Annotated[
    bool, typer.Option("--json", help="Print JSON for scripts (one object per line for streams).")
]
Ref = Annotated[str, typer.Argument(metavar="REF", help="RUNTIME/WORKER_ID or NAME@RUNTIME.")]
RedisUrl = Annotated[
    str | None,
    typer.Option("--redis-url", help="Redis URL (default: YOI_REDIS_URL or REDIS_URL)."),
]
LogLevel = Annotated[
    str | None,
    typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR (default: YOI_LOG_LEVEL)."),
]
