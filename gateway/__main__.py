"""`python -m gateway [--host H] [--port P] [--redis-url URL] [--fleet ID[,ID]]`.

Flags override `YOI_*` environment variables (the one `Settings` model reads both).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from gateway.auth import UnsafeConfig
from gateway.server import serve
from shared.settings import Settings


def parse_args(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    parser.add_argument("--host", help="address to listen on (YOI_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (YOI_PORT, default 8000)")
    parser.add_argument("--redis-url", help="Redis of the fleet runtimes (YOI_REDIS_URL)")
    parser.add_argument(
        "--fleet",
        action="append",
        metavar="ID[,ID]",
        help="fleet runtime id(s) to serve; repeatable (YOI_FLEETS)",
    )
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.redis_url is not None:
        overrides["redis_url"] = args.redis_url
    if args.fleet:
        overrides["fleets"] = ",".join(args.fleet)
    return overrides


def main(argv: Sequence[str] | None = None) -> int:
    overrides = parse_args(argv)
    try:
        settings = Settings(**overrides)
        serve(settings)
    except (UnsafeConfig, ValidationError, ValueError) as exc:
        # Configuration mistakes: one clear line, no traceback.
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
