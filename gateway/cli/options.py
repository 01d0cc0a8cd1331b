"""Flags several command groups share, declared once so every command spells them alike
(`--redis-url` and `--log-level` come from `runtime_worker.command`, which `yoi runtime` is)."""

from __future__ import annotations

from typing import Annotated

import typer

from runtime_worker.command import LogLevel, RedisUrl

Json = Annotated[
    bool, typer.Option("--json", help="Print JSON for scripts (one object per line for streams).")
]
Ref = Annotated[str, typer.Argument(metavar="REF", help="RUNTIME/WORKER_ID or NAME@RUNTIME.")]

__all__ = ["Json", "LogLevel", "RedisUrl", "Ref"]
