"""Terminal output: aligned tables like `kubectl get`, one line per event, transcript entries.

Text that came from a Worker, a model or a user goes through `safe` before it reaches the
terminal: a control character in a message (`\\e]0;…\\a` retitles the terminal, `\\e[2J`
clears it, a bare `\\r` overwrites the line) is printed as a visible escape instead.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from shared.events import Event
from shared.models import RunResult, TranscriptEntry, TranscriptRole

SHORT_TEXT_CHARS = 60
TYPE_WIDTH = len("state_changed")
# C0 controls, DEL, C1 controls (U+009B is an 8-bit CSI), and the bidirectional overrides that
# make text display in another order than it reads.
_UNSAFE_BEYOND_C0 = "\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\x00-\x1f{_UNSAFE_BEYOND_C0}]")
_CONTROL_BUT_LINES = re.compile(f"[\x00-\x08\x0b-\x1f{_UNSAFE_BEYOND_C0}]")  # keeps \t, \n


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: str, *, multiline: bool = False) -> str:
    """`text` with every terminal control character shown as `\\xNN` / `\\uNNNN`; with
    `multiline`, newlines and tabs stay (streamed answers, transcripts)."""
    return (_CONTROL_BUT_LINES if multiline else _CONTROL).sub(_escape, text)


def json_line(value: BaseModel | dict[str, Any]) -> str:
    """One JSON document for scripts; ASCII-only, so no control character reaches a terminal."""
    data = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    return json.dumps(data, ensure_ascii=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, three spaces apart; no trailing blanks."""
    rows = [[safe(cell) for cell in row] for row in rows]
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
    quoted = safe(text.replace("\\", "\\\\").replace("\n", "\\n"))
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
            reason = f" reason={safe(event.reason)}" if event.reason else ""
            return f"result={event.result.value}{reason}"
        case "usage":
            return f"input_tokens={event.input_tokens} output_tokens={event.output_tokens}"
        case "state_changed":
            return f"state={event.state.value}"
        case "error":
            return f"{event.code}: {safe(event.message)}"
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
    return f"{clock}  {who}> {safe(entry.text, multiline=True)}{outcome}"
