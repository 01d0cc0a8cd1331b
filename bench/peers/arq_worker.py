"""An arq worker process for the HTTP + arq peer, with `poll_delay` from the command line.

arq's INFO log (one line per job) is left unconfigured so logging does not cap the peer's
throughput: the peer gets its best case.

Run: python -m bench.peers.arq_worker --redis-url URL --poll-delay-s 0.01
"""

from __future__ import annotations

import argparse

from arq.connections import RedisSettings
from arq.worker import Worker

from bench.peers.arq_app import reply


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--poll-delay-s", type=float, default=0.5)
    args = parser.parse_args()
    worker = Worker(
        functions=[reply],
        redis_settings=RedisSettings.from_dsn(args.redis_url),
        poll_delay=args.poll_delay_s,
        handle_signals=True,
    )
    worker.run()


if __name__ == "__main__":
    main()
