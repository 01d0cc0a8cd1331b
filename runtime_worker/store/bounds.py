"""Bounds every store keeps alike (the Lua scripts get them as arguments, never spell them).

- Input ids are remembered for two generations of `DEDUPE_WINDOW` inputs per Worker: when the
  current generation is full it becomes the old one and the one before is forgotten. A client
  retrying an input within the last 1,000 (at least) gets the same answer.
- A stopped Worker is kept `Settings.retention_s` after it stopped, then forgotten.
- The event log keeps `Settings.events_maxlen` entries, the transcript the Worker's
  `transcript_maxlen`.
"""

from __future__ import annotations

import hashlib

DEDUPE_WINDOW = 1000
"""Input ids per generation of a Worker's dedupe memory (two generations are kept)."""


def text_digest(text: str) -> str:
    """What a store remembers of an input's text to tell a retry from a reused `input_id`."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()
