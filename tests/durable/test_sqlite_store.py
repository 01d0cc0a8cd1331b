"""The SQLite store beyond the shared contract: what it wrote is what it reads back after a
reopen, cursors go on increasing, one process at a time holds the file, the file is one SQLite
database in WAL mode, and `Runtime.embedded()` takes it only when asked (memory by default)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from runtime_worker.runtime import Runtime
from runtime_worker.store._sqlite_codec import claims_of
from runtime_worker.store.base import RunOutcome, WorkerRecord
from runtime_worker.store.bounds import DEDUPE_WINDOW
from runtime_worker.store.memory import MemoryStore
from runtime_worker.store.sqlite import SqliteStore
from shared.errors import LeaseLost, RuntimeUnavailable, WorkerNotFound
from shared.events import TextDelta
from shared.ids import new_id
from shared.models import RunResult, ScopeEntry, ScopeMode, Strategy, WorkerState
from shared.settings import Settings
from shared.timeutil import now_s
from tests.helpers import wait_until

SETTINGS = Settings(events_maxlen=12, data_dir=None)
MEMBER = "embedded"


def _record(**fields: object) -> WorkerRecord:
    values: dict[str, object] = {
        "worker_id": new_id(),
        "display_name": "w",
        "profile": "assistant",
        "created_at": now_s(),
        "transcript_maxlen": 4,
        **fields,
    }
    return WorkerRecord(**values)  # type: ignore[arg-type]


def _snapshot(store: SqliteStore) -> dict[str, object]:
    """Every piece of state the memory logic keeps, leases aside (they are not durable)."""
    workers = {}
    for worker_id, worker in store._workers.items():
        record = worker.record
        workers[worker_id] = (
            {**vars(record), "host": None, "usage": record.usage.model_dump()},
            (worker.events.ids, worker.events.items, worker.events.trimmed),
            (worker.transcript.ids, worker.transcript.items, worker.transcript.trimmed),
            list(worker.inputs),
            (dict(worker.input_ids.current), dict(worker.input_ids.old)),
            worker.retire_at is None,  # a deadline: monotonic here, wall clock in the file
        )
    return {"workers": workers, "claims": dict(claims_of(store))}


async def _busy_history(store: SqliteStore) -> tuple[str, str, int]:
    """A Worker with finished, cancelled, trimmed and still queued inputs; one stopped Worker."""
    writer = ScopeEntry(path="/repo", mode=ScopeMode.WRITE)
    worker = _record(scope=[writer])
    await store.claim_scope(worker.worker_id, [writer], None)
    await store.create(worker)
    worker_id = worker.worker_id
    epoch = await store.acquire(worker_id, MEMBER, 0)
    assert epoch is not None
    for n in range(4):
        await store.submit_input(worker_id, f"in {n}", f"i{n}", Strategy.ENQUEUE, now_s())
    await store.submit_input(worker_id, "in 0", "i0", Strategy.ENQUEUE, now_s())  # duplicate
    for n in range(3):
        taken = await store.take_run(worker_id, MEMBER, epoch, new_id(), now_s(), 10)
        assert taken is not None
        item, claim = taken.item, taken.claim
        ids = {"worker_id": worker_id, "ts": now_s(), "run_id": claim.run_id}
        delta = TextDelta(**ids, input_id=item.input_id, text="piece ")
        await store.append_events(worker_id, epoch, [delta], run_id=claim.run_id)
        if n == 1:
            await store.cancel(worker_id)
        outcome = RunOutcome(RunResult.FINISHED, "piece ", input_tokens=2, output_tokens=1)
        await store.finish_run(worker_id, epoch, item, outcome, now_s(), run_id=claim.run_id)
    other = _record()
    await store.create(other)
    await store.request_stop(other.worker_id)
    return worker_id, other.worker_id, epoch


async def test_a_reopened_store_holds_exactly_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "yoi.sqlite3"
    store = SqliteStore(path, SETTINGS)
    worker_id, _, epoch = await _busy_history(store)
    before = _snapshot(store)
    events = await store.read_events(worker_id, None, 100)
    transcript = await store.read_transcript(worker_id, 100, None)
    await store.aclose()

    reopened = SqliteStore(path, SETTINGS)
    try:
        assert _snapshot(reopened) == before
        assert await reopened.read_events(worker_id, None, 100) == events
        assert await reopened.read_transcript(worker_id, 100, None) == transcript
        assert len(events) == SETTINGS.events_maxlen  # the window was trimmed, and stays so
        # No lease survives: a new host takes the Worker under a higher epoch, the old is fenced.
        new_epoch = await reopened.acquire(worker_id, MEMBER, 0)
        assert new_epoch == epoch + 1
        with pytest.raises(LeaseLost):
            await reopened.append_events(worker_id, epoch, [], run_id=new_id())
        # The dedupe entries still answer, and the input left queued is still there.
        again = await reopened.submit_input(worker_id, "in 1", "i1", Strategy.ENQUEUE, now_s())
        assert again.duplicate
        taken = await reopened.take_run(worker_id, MEMBER, new_epoch, new_id(), now_s(), 0)
        assert taken is not None and taken.item.input_id == "i3"
    finally:
        await reopened.aclose()


async def test_cursors_keep_increasing_after_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "yoi.sqlite3"
    store = SqliteStore(path, SETTINGS)
    record = (await store.create(_record())).record
    last = await store.last_cursor(record.worker_id)
    await store.aclose()
    reopened = SqliteStore(path, SETTINGS)
    try:
        await reopened.request_stop(record.worker_id)
        newest = await reopened.last_cursor(record.worker_id)
        assert tuple(map(int, newest.split("-"))) > tuple(map(int, last.split("-")))
        assert [e.cursor for e in await reopened.read_events(record.worker_id, last, 10)] == [
            newest
        ]
    finally:
        await reopened.aclose()


async def test_one_process_at_a_time_holds_the_file(tmp_path: Path) -> None:
    path = tmp_path / "yoi.sqlite3"
    store = SqliteStore(path, SETTINGS)
    try:
        with pytest.raises(RuntimeUnavailable, match="in use by another process") as caught:
            SqliteStore(path, SETTINGS)
        assert str(tmp_path) not in caught.value.message
    finally:
        await store.aclose()
    await SqliteStore(path, SETTINGS).aclose()  # free again once closed


async def test_released_scope_claims_are_gone_after_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "yoi.sqlite3"
    writer = [ScopeEntry(path="/data", mode=ScopeMode.WRITE)]
    store = SqliteStore(path, SETTINGS)
    kept, dropped = _record(scope=writer), _record()
    await store.claim_scope(kept.worker_id, writer, None)
    await store.claim_scope(
        dropped.worker_id, [ScopeEntry(path="/tmp", mode=ScopeMode.WRITE)], None
    )
    await store.release_scope(dropped.worker_id)
    await store.aclose()
    reopened = SqliteStore(path, SETTINGS)
    try:
        assert set(claims_of(reopened)) == {kept.worker_id}
    finally:
        await reopened.aclose()


async def test_dedupe_generations_and_retention_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "yoi.sqlite3"
    settings = Settings(events_maxlen=12, retention_s=2, data_dir=None)
    store = SqliteStore(path, settings)
    worker = _record()
    await store.create(worker)
    await store.submit_input(worker.worker_id, "t", "oldest", Strategy.ENQUEUE, now_s())
    for i in range(2 * DEDUPE_WINDOW):
        await store.submit_input(worker.worker_id, "t", f"k{i}", Strategy.ENQUEUE, now_s())
    stopped = _record()
    await store.create(stopped)
    await store.request_stop(stopped.worker_id)
    await store.aclose()

    reopened = SqliteStore(path, settings)
    try:
        recent = await reopened.submit_input(
            worker.worker_id, "t", f"k{DEDUPE_WINDOW}", Strategy.ENQUEUE, now_s()
        )
        assert recent.duplicate  # within the last window: the same answer, after a reopen too
        forgotten = await reopened.submit_input(
            worker.worker_id, "t", "oldest", Strategy.ENQUEUE, now_s()
        )
        assert not forgotten.duplicate and forgotten.seq == 2 * DEDUPE_WINDOW + 2
        assert (await reopened.get_worker(stopped.worker_id)).state is WorkerState.STOPPED

        async def retired() -> bool:
            try:
                await reopened.get_worker(stopped.worker_id)
            except WorkerNotFound:
                return True
            return False

        await wait_until(retired, timeout_s=10, what="the stopped worker's retention to end")
    finally:
        await reopened.aclose()  # writes the retirement down
    again = SqliteStore(path, settings)
    try:
        assert set(again._saved) == {worker.worker_id}  # what the file holds
    finally:
        await again.aclose()


def _files_and_journal_mode(path: Path) -> tuple[list[str], str]:
    files = sorted(p.name for p in path.parent.iterdir())
    db = sqlite3.connect(path)
    try:
        (mode,) = db.execute("PRAGMA journal_mode").fetchone()
    finally:
        db.close()
    return files, str(mode)


async def test_the_store_is_one_file_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "yoi.sqlite3"
    store = SqliteStore(path, SETTINGS)
    await store.create(_record())
    await store.aclose()
    # WAL is a property of the file (it outlives the connection); a clean close checkpoints
    # the log back into it, so the one database file is all that is left.
    assert _files_and_journal_mode(path) == (["yoi.sqlite3"], "wal")


async def test_embedded_keeps_memory_unless_given_a_path_or_a_store(tmp_path: Path) -> None:
    in_memory = Runtime.embedded(SETTINGS)
    assert type(in_memory.store) is MemoryStore
    durable = Runtime.embedded(SETTINGS, path=tmp_path / "w.sqlite3")
    try:
        assert isinstance(durable.store, SqliteStore)
        assert (tmp_path / "w.sqlite3").is_file()
    finally:
        await durable.store.aclose()
    given = MemoryStore(SETTINGS)
    assert Runtime.embedded(SETTINGS, path=tmp_path / "unused.sqlite3", store=given).store is given
    assert not (tmp_path / "unused.sqlite3").exists()
    await in_memory.store.aclose()
    await given.aclose()
