"""How RedisStore lays values out: record hash fields and versioned JSON stream entries.

Stream entries are documented in docs/redis-layout.md; every one is JSON with `"v": 1`, so
anyone can tail them. Event and transcript cursors are not stored: they are the entry ids.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence

from pydantic_core import to_json

from runtime_worker.store.base import QueuedInput, WorkerRecord
from runtime_worker.store.outcome import user_entry
from shared.events import Event, RunStarted, dump_stored, parse_stored
from shared.models import ScopeEntry, TranscriptEntry, Usage, WorkerState

ENTRY_VERSION = 1

# Optional record fields (delegated_from, host, run_id, run_input_id, run_cursor, last_error) are
# absent from the hash when None: small hashes stay listpacks.
_COUNTERS = ("epoch", "next_seq", "done_seq", "cancel_upto", "run_seq", "run_attempt")


def record_fields(record: WorkerRecord, *, with_id: bool = True) -> dict[str, str]:
    """The hash of a new Worker; usage starts from the record's totals. Without the worker id
    for a store whose key says it (`record_from_fields` is then told it)."""
    fields = {"worker_id": record.worker_id} if with_id else {}
    fields |= {
        "display_name": record.display_name,
        "profile": record.profile,
        "created_at": repr(record.created_at),
        "state": record.state.value,
        "transcript_maxlen": str(record.transcript_maxlen),
        "input_tokens": str(record.usage.input_tokens),
        "output_tokens": str(record.usage.output_tokens),
        "runs": str(record.usage.runs),
    }
    fields.update({name: str(getattr(record, name)) for name in _COUNTERS})
    if record.scope:
        fields["scope"] = scope_json(record.scope)
    for name in ("delegated_from", "host", "run_id", "run_input_id", "run_cursor"):
        value = getattr(record, name)
        if value is not None:
            fields[name] = value
    if record.run_started_at is not None:
        fields["run_started_at"] = repr(record.run_started_at)
    if record.usage.last_error is not None:
        fields["last_error"] = record.usage.last_error
    if record.webhook_url is not None:
        fields["hook_url"] = record.webhook_url
    if record.webhook_last is not None:
        fields["hook_last"] = record.webhook_last
    if record.webhook_pending:
        fields["hook_pending"] = json.dumps(record.webhook_pending, separators=(",", ":"))
    for result, count in record.usage.runs_by_result.items():
        fields[f"runs_{result}"] = str(count)
    for code, count in record.usage.errors_by_code.items():
        fields[f"errors_{code}"] = str(count)
    return fields


def record_from_fields(fields: Mapping[str, str], worker_id: str | None = None) -> WorkerRecord:
    """The record of `fields`; `worker_id` where they do not hold it (Redis: the key does)."""
    worker_id = fields.get("worker_id", worker_id)
    if worker_id is None:
        raise KeyError("worker_id")
    runs_by_result = {
        name.removeprefix("runs_"): int(value)
        for name, value in fields.items()
        if name.startswith("runs_")
    }
    errors_by_code = {
        name.removeprefix("errors_"): int(value)
        for name, value in fields.items()
        if name.startswith("errors_")
    }
    usage = Usage(
        input_tokens=int(fields.get("input_tokens", 0)),
        output_tokens=int(fields.get("output_tokens", 0)),
        runs=int(fields.get("runs", 0)),
        runs_by_result=runs_by_result,
        errors_by_code=errors_by_code,
        last_error=fields.get("last_error"),
    )
    record = WorkerRecord(
        worker_id=worker_id,
        display_name=fields["display_name"],
        profile=fields["profile"],
        created_at=float(fields["created_at"]),
        scope=parse_scope(fields.get("scope", "[]")),
        delegated_from=fields.get("delegated_from"),
        state=WorkerState(fields["state"]),
        host=fields.get("host"),
        run_id=fields.get("run_id"),
        run_input_id=fields.get("run_input_id"),
        run_cursor=fields.get("run_cursor"),
        run_started_at=float(fields["run_started_at"]) if "run_started_at" in fields else None,
        transcript_maxlen=int(fields["transcript_maxlen"]),
        usage=usage,
        webhook_url=fields.get("hook_url"),
        webhook_last=fields.get("hook_last"),
        webhook_pending=json.loads(fields.get("hook_pending", "{}")),
    )
    for name in _COUNTERS:
        setattr(record, name, int(fields.get(name, 0)))
    return record


def scope_json(scope: Sequence[ScopeEntry]) -> str:
    return json.dumps([entry.model_dump(mode="json") for entry in scope], separators=(",", ":"))


def parse_scope(raw: str) -> list[ScopeEntry]:
    return [ScopeEntry.model_validate(item) for item in json.loads(raw)]


# -- stream entries --------------------------------------------------------------------------------


def input_entry_tail(
    input_id: str, text: str, ts: float, trace: Mapping[str, str] | None = None
) -> str:
    """The input entry's JSON after `{"v":1,"seq":<n>,` (the script knows the seq); `tc`, the
    sender's trace context (W3C headers), only when there is one."""
    fields: dict[str, object] = {"input_id": input_id, "text": text, "ts": ts}
    if trace:
        fields["tc"] = dict(trace)
    return json.dumps(fields, separators=(",", ":"))[1:]


def parse_input(entry_id: str, raw: str) -> QueuedInput:
    data = json.loads(raw)
    return QueuedInput(
        entry_id=entry_id,
        seq=int(data["seq"]),
        input_id=str(data["input_id"]),
        text=str(data["text"]),
        ts=float(data["ts"]),
        trace={str(k): str(v) for k, v in (data.get("tc") or {}).items()},
    )


def transcript_json(entry: TranscriptEntry) -> str:
    body = entry.model_dump(mode="json", exclude={"cursor"}, exclude_none=True)
    return json.dumps({"v": ENTRY_VERSION, **body}, separators=(",", ":"))


def parse_transcript(entry_id: str, raw: str) -> TranscriptEntry:
    return TranscriptEntry.model_validate_json(raw).model_copy(update={"cursor": entry_id})


def event_from_entry(worker_id: str, entry_id: str, raw: str) -> Event:
    return parse_stored(raw, worker_id, entry_id)


def template(event: Event, field: str) -> tuple[str, str]:
    """The event's JSON split around one field's value, for a script to fill the hole:
    `prefix + value_json + suffix`."""
    prefix, suffix = holes(dump_stored(event), (field, getattr(event, field)))
    return prefix, suffix


def holes(text: str, *fields: tuple[str, object]) -> list[str]:
    """A JSON object cut around the values of `fields` (name and the value it holds, in the
    order they appear): a script rebuilds it as `parts[0] + value_0 + parts[1] + ...`."""
    parts: list[str] = []
    rest = text
    for name, value in fields:
        marker = f'"{name}":' + json.dumps(value, separators=(",", ":"))
        head, found, rest = rest.partition(marker)
        if not found or marker in rest:
            raise ValueError(f"cannot cut field {name!r}")
        parts.append(head + f'"{name}":')
    parts.append(rest)
    return parts


_RUN_SHAPE = "run-id-of-the-shape"
_TS_SHAPE = 0.5
_RUN_FIELD = f'"run_id":"{_RUN_SHAPE}"'
_TS_FIELD = f'"ts":{_TS_SHAPE}'


@functools.cache
def _take_shapes() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`take_templates` built from the models once, around placeholder run id and ts: the
    models' dumps cost more than the rest of a take's Python, on every take."""
    started = RunStarted(worker_id="w", ts=_TS_SHAPE, run_id=_RUN_SHAPE, input_id="x", attempt=1)
    user = user_entry(QueuedInput(entry_id="", seq=0, input_id="x", text="", ts=0.0), _RUN_SHAPE)
    return (
        tuple(holes(dump_stored(started), ("input_id", "x"), ("attempt", 1))),
        tuple(holes(transcript_json(user), ("text", ""), ("ts", 0.0), ("input_id", "x"))),
    )


def take_templates(run_id: str, ts: float) -> tuple[list[str], list[str]]:
    """What lua/take_run.lua fills with an input's values as JSON: the run_started event with
    holes for the input id and the attempt, and the user transcript entry with holes for the
    text, the ts and the input id. The models' own JSON (`dump_stored`, `transcript_json`),
    with this take's run id and ts put in as pydantic encodes them."""
    started, user = _take_shapes()
    run_field = '"run_id":' + to_json(run_id).decode()
    ts_field = '"ts":' + to_json(ts).decode()
    return (
        [part.replace(_RUN_FIELD, run_field).replace(_TS_FIELD, ts_field) for part in started],
        [part.replace(_RUN_FIELD, run_field) for part in user],
    )


def history(newest_first: str) -> list[tuple[str, str]]:
    """(role, text) of a JSON array of transcript entries, oldest first: all a turn's history
    needs."""
    entries = json.loads(newest_first)
    return [(str(entry["role"]), str(entry["text"])) for entry in reversed(entries)]


def final_entry_template(entry: TranscriptEntry) -> list[str]:
    """A run's final transcript entry with holes for its attempt and start time, which
    lua/finish_run.lua takes from the record."""
    blank = entry.model_copy(update={"attempt": 1, "started_at": 0.0})
    return holes(transcript_json(blank), ("attempt", 1), ("started_at", 0.0))
