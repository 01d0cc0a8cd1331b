"""Server-Sent Events framing, fed line by line (the same parser for the sync and async
clients): fields until a blank line; comments (the gateway's heartbeats) skipped."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pydantic import ValidationError

from shared.events import Event, parse_event


@dataclass
class SseMessage:
    id: str | None = None
    event: str = "message"
    data: list[str] = field(default_factory=list)


class SseParser:
    def __init__(self) -> None:
        self._message = SseMessage()

    def feed(self, line: str) -> SseMessage | None:
        """The message a blank line completes, else None."""
        message = self._message
        if not line:
            self._message = SseMessage()
            return message if message.data else None
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            message.data.append(value)
        elif name == "id":
            message.id = value
        elif name == "event":
            message.event = value
        return None


def event_of(message: SseMessage) -> Event | None:
    """The typed event, its cursor taken from the SSE id; None for a type this SDK predates."""
    try:
        event = parse_event("\n".join(message.data))
    except (ValidationError, json.JSONDecodeError):
        return None
    if message.id and not event.cursor:
        event.cursor = message.id
    return event
