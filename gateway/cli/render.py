"""Terminal output: aligned tables like `kubectl get`, one line per event, transcript entries."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

from shared.events import Event
from shared.models import RunResult, TranscriptEntry, TranscriptRole

SHORT_TEXT_CHARS = 60
TYPE_WIDTH = len("state_changed")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, three spaces apart; no trailing blanks."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [
        "   ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [list(headers), *rows]
    ]
    return "\n".join(lines)


def age(created_at_s: float, now_s: float | None = None) -> str:
    """`45s`, `12m`, `3h`, `2d`: the largest whole unit, as `kubectl get` shows ages."""
    seconds = max(0, int((time.time() if now_s is None else now_s) - created_at_s))
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def short(text: str, limit: int = SHORT_TEXT_CHARS) -> str:
    """A one-line quote: newlines escaped, long text cut with an ellipsis."""
    quoted = text.replace("\\", "\\\\").replace("\n", "\\n")
    if len(quoted) > limit:
        quoted = quoted[: limit - 1] + "…"
    return f'"{quoted}"'


def event_payload(event: Event) -> str:
    """The part of an event a person tailing a worker wants to see."""
    match event.type:
        case "user_message" | "text_delta":
            return short(event.text)
        case "text_done":
            return f"{len(event.text)} chars {short(event.text)}"
        case "run_started":
            return f"run={event.run_id} attempt={event.attempt}"
        case "run_finished":
            reason = f" reason={event.reason}" if event.reason else ""
            return f"result={event.result.value}{reason}"
        case "usage":
            return f"input_tokens={event.input_tokens} output_tokens={event.output_tokens}"
        case "state_changed":
            return f"state={event.state.value}"
        case "error":
            return f"{event.code}: {event.message}"
    return ""  # pragma: no cover - the union is exhaustive


def event_line(event: Event) -> str:
    return f"{event.cursor}  {event.type.ljust(TYPE_WIDTH)}  {event_payload(event)}".rstrip()


def transcript_line(entry: TranscriptEntry) -> str:
    clock = datetime.fromtimestamp(entry.ts).strftime("%H:%M:%S")
    who = {
        TranscriptRole.USER: "you",
        TranscriptRole.ASSISTANT: "assistant",
        TranscriptRole.NOTICE: "notice",
    }[entry.role]
    outcome = (
        f"  [{entry.result.value}]"
        if entry.result is not None and entry.result != RunResult.FINISHED
        else ""
    )
    return f"{clock}  {who}> {entry.text}{outcome}"
