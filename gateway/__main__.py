"""`python -m gateway`: the same command as `yoi gateway` (one definition, one set of flags)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from gateway.cli.app import run
from gateway.cli.servers import gateway


def main(argv: Sequence[str] | None = None) -> None:
    app = typer.Typer(
        add_completion=False,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.command()(gateway)
    run(app, sys.argv[1:] if argv is None else argv, "python -m gateway")


if __name__ == "__main__":
    main()
