"""`python -m gateway`: the same command as `yoi gateway` (one definition, one set of flags)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from gateway.cli.app import run
from gateway.cli.servers import gateway
from runtime_worker.command import command_app


def main(argv: Sequence[str] | None = None) -> None:
    run(command_app(gateway), sys.argv[1:] if argv is None else argv, "python -m gateway")


if __name__ == "__main__":
    main()
