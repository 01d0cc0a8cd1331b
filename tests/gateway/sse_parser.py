"""A Server-Sent Events parser that follows the WHATWG "event stream interpretation" rules, the
way a browser's EventSource reads a stream: CRLF, LF or CR line ends, `:` comments, one optional
space after the colon, `data` lines joined by LF, `id` kept across events (and ignored when it
holds NUL), `retry` only when all digits, dispatch on a blank line, nothing without data."""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass, field
from typing import Any

_LINE_END = re.compile(r"(\r\n|\r|\n)")


@dataclass(frozen=True)
class Message:
    event: str
    data: str
    last_event_id: str
    block_had_id: bool  # whether this message's own block carried an `id:` line

    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.data)
        return value


@dataclass
class SseParser:
    messages: list[Message] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    comment_blocks_with_id: int = 0
    last_event_id: str = ""
    retry_ms: int | None = None
    _decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")()
    )
    _pending: str = ""
    _started: bool = False
    _trailing_cr: bool = False
    _data: list[str] = field(default_factory=list)
    _event: str = ""
    _id_buffer: str = ""
    _block_had_id: bool = False
    _block_had_comment: bool = False

    def feed(self, chunk: bytes) -> list[Message]:
        """Feed raw bytes; returns the messages this chunk completed."""
        text = self._decoder.decode(chunk)
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._trailing_cr and text:
            # A CR ended the last chunk: a LF opening this one is the rest of that CRLF.
            text = text.removeprefix("\n")
            self._trailing_cr = False
        parts = _LINE_END.split(self._pending + text)
        lines, ends = parts[0::2], parts[1::2]
        self._pending = lines.pop()
        self._trailing_cr = bool(ends) and ends[-1] == "\r" and self._pending == ""
        before = len(self.messages)
        for line in lines:
            self._line(line)
        return self.messages[before:]

    def _line(self, line: str) -> None:
        if line == "":
            self._dispatch()
            return
        if line.startswith(":"):
            self.comments.append(line[1:].removeprefix(" "))
            self._block_had_comment = True
            return
        name, colon, value = line.partition(":")
        if colon:
            value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._block_had_id = True
            if "\x00" not in value:
                self._id_buffer = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)

    def _dispatch(self) -> None:
        self.last_event_id = self._id_buffer
        if self._block_had_comment and self._block_had_id:
            self.comment_blocks_with_id += 1
        if self._data:
            self.messages.append(
                Message(
                    event=self._event or "message",
                    data="\n".join(self._data),
                    last_event_id=self.last_event_id,
                    block_had_id=self._block_had_id,
                )
            )
        self._data, self._event = [], ""
        self._block_had_id = self._block_had_comment = False
