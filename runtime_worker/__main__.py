"""`python -m runtime_worker`: run one member of a fleet runtime until SIGTERM/SIGINT.

Flags override the YOI_* environment (one Settings model for both). Exit status: 0 after a
graceful stop, 1 when a member loop failed, 2 for bad configuration.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError

from runtime_worker.member import run_member
from shared import aio
from shared.errors import YoiError
from shared.settings import Settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m runtime_worker", description="Run one member of a Yoi fleet runtime."
    )
    parser.add_argument("--redis-url", help="Redis URL (else YOI_REDIS_URL or REDIS_URL)")
    parser.add_argument("--runtime-id", help="the fleet runtime to join (YOI_RUNTIME_ID)")
    parser.add_argument("--namespace", help="the key namespace (YOI_NAMESPACE)")
    parser.add_argument("--capacity", type=int, help="most Workers hosted at once (YOI_CAPACITY)")
    parser.add_argument("--member-id", help="this member's id (default: <host>-<pid>-<random>)")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    overrides = {
        name: value
        for name, value in (
            ("redis_url", args.redis_url),
            ("runtime_id", args.runtime_id),
            ("namespace", args.namespace),
            ("capacity", args.capacity),
            ("member_id", args.member_id),
        )
        if value is not None
    }
    return Settings(**overrides)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("arq").setLevel(logging.WARNING)  # job lines carry user text
    try:
        settings = settings_from(args)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in err["loc"]) for err in exc.errors())
        print(f"invalid settings: {fields}", file=sys.stderr)
        return 2
    if settings.redis_url is None:
        print("a runtime process needs --redis-url (or YOI_REDIS_URL)", file=sys.stderr)
        return 2
    try:
        aio.run(run_member(settings))
    except YoiError as exc:
        logging.getLogger("yoi.member").error("member failed: %s", exc.code)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C during the graceful stop
        return 130
    except Exception as exc:
        logging.getLogger("yoi.member").error("member failed: %s", type(exc).__name__)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
