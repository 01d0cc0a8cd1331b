"""Identifiers: validated slugs for people-chosen names, time-ordered ids for generated ones."""

from __future__ import annotations

import os
import re
import time
from typing import Annotated

from pydantic import StringConstraints

RUNTIME_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
WORKER_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
DISPLAY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
INPUT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
CURSOR_FORM = r"[0-9]{1,20}(-[0-9]{1,20})?"
"""A cursor as every store parses it (a stream id, `<ms>` or `<ms>-<n>`): the gateway states it
in OpenAPI, so no cursor the schema allows is refused for its form. Cursors stay opaque to
clients, who pass back what they were given."""
CURSOR_PATTERN = f"^{CURSOR_FORM}$"

RuntimeId = Annotated[str, StringConstraints(pattern=RUNTIME_ID_PATTERN)]
WorkerId = Annotated[str, StringConstraints(pattern=WORKER_ID_PATTERN)]
DisplayName = Annotated[str, StringConstraints(pattern=DISPLAY_NAME_PATTERN)]
InputId = Annotated[str, StringConstraints(pattern=INPUT_ID_PATTERN)]

_RUNTIME_RE = re.compile(RUNTIME_ID_PATTERN)
_WORKER_RE = re.compile(WORKER_ID_PATTERN)
_NAME_RE = re.compile(DISPLAY_NAME_PATTERN)


def new_id() -> str:
    """A UUIDv7 as text: unique without coordination and sortable by creation time."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def is_runtime_id(value: str) -> bool:
    return bool(_RUNTIME_RE.match(value))


def is_worker_id(value: str) -> bool:
    return bool(_WORKER_RE.match(value))


def is_display_name(value: str) -> bool:
    return bool(_NAME_RE.match(value))


def display_ref(display_name: str, runtime_id: str) -> str:
    """`name@runtime`: for people only, never used to route."""
    return f"{display_name}@{runtime_id}"
