"""The SQLite file under `SqliteStore`: schema, exclusive open, load, and one transaction per step.

One connection, used by one event loop at a time (made in any thread). WAL with
`synchronous=NORMAL`: a committed step survives the process being killed (`kill -9`); only a
power loss may drop the last steps. `locking_mode=EXCLUSIVE` keeps the file locked while it is
open, so a second process on the same data directory is refused instead of corrupting it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shared.errors import RuntimeUnavailable

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS workers (
    worker_id TEXT PRIMARY KEY, record TEXT NOT NULL, extra TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    worker_id TEXT NOT NULL, ms INTEGER NOT NULL, n INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (worker_id, ms, n)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS transcript (
    worker_id TEXT NOT NULL, ms INTEGER NOT NULL, n INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (worker_id, ms, n)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inputs (
    worker_id TEXT NOT NULL, ms INTEGER NOT NULL, n INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (worker_id, ms, n)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedupe (
    worker_id TEXT NOT NULL, input_id TEXT NOT NULL, generation TEXT NOT NULL,
    seq INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (worker_id, input_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS claims (
    worker_id TEXT PRIMARY KEY, grp TEXT NOT NULL, scope TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS schedules (
    schedule_id TEXT PRIMARY KEY, entry TEXT NOT NULL, mark TEXT
) WITHOUT ROWID;
"""

Op = tuple[str, tuple[object, ...]]
"""One SQL statement and its parameters; a step is a list of them, written in one transaction."""

LogRow = tuple[str, int, int, str]


@dataclass
class Loaded:
    """Everything in the file, each log ordered by cursor and dedupe entries by seq."""

    workers: list[tuple[str, str, str]] = field(default_factory=list)
    events: list[LogRow] = field(default_factory=list)
    transcript: list[LogRow] = field(default_factory=list)
    inputs: list[LogRow] = field(default_factory=list)
    dedupe: list[tuple[str, str, str, str]] = field(default_factory=list)
    claims: list[tuple[str, str, str]] = field(default_factory=list)
    schedules: list[tuple[str, str, str | None]] = field(default_factory=list)


class SqliteFile:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are explicit (`write`); timeout 0: a lock held by
        # another process is an immediate, clear refusal rather than a hang.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0)
        try:
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # A write takes the exclusive lock, kept until close.
            self._db.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
            self._check_version()
        except sqlite3.OperationalError as exc:
            self._db.close()
            if "locked" in str(exc):
                raise RuntimeUnavailable(
                    "the embedded store is in use by another process (one gateway per data dir)",
                    retryable=False,
                ) from None
            raise

    def _check_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        elif row[0] != SCHEMA_VERSION:
            raise RuntimeUnavailable(
                f"the embedded store has schema {row[0]}, this version reads {SCHEMA_VERSION}",
                retryable=False,
            )

    def load(self) -> Loaded:
        db = self._db
        return Loaded(
            workers=db.execute("SELECT worker_id, record, extra FROM workers").fetchall(),
            events=db.execute("SELECT * FROM events ORDER BY worker_id, ms, n").fetchall(),
            transcript=db.execute("SELECT * FROM transcript ORDER BY worker_id, ms, n").fetchall(),
            inputs=db.execute("SELECT * FROM inputs ORDER BY worker_id, ms, n").fetchall(),
            dedupe=db.execute(
                "SELECT worker_id, input_id, generation, body FROM dedupe ORDER BY worker_id, seq"
            ).fetchall(),
            claims=db.execute("SELECT worker_id, grp, scope FROM claims").fetchall(),
            schedules=db.execute("SELECT schedule_id, entry, mark FROM schedules").fetchall(),
        )

    def write(self, ops: Sequence[Op]) -> None:
        """One step, all or nothing."""
        db = self._db
        db.execute("BEGIN")
        try:
            for sql, params in ops:
                db.execute(sql, params)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()
