"""`Hosted`: what a `Host` keeps per Worker whose lease it holds.

Its own module because both the host's drain loop and the turn runner read and write it (the
running turn, the text streamed so far, a cancel asked for), and neither should import the other.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from runtime_worker.profiles import Profile
from runtime_worker.store.base import QueuedInput, RunOutcome


@dataclass(slots=True)
class Hosted:
    """One Worker this member holds the lease of. Kept small (slots, no task while idle): a
    member holds thousands."""

    epoch: int
    profile: Profile | None = None
    display_name: str = ""
    drain: asyncio.Task[None] | None = None
    turn: asyncio.Task[RunOutcome] | None = None
    seq: int = 0
    cancel_requested: bool = False
    hinted: bool = False  # a hint came while a drain was on: look again before it ends
    ahead: QueuedInput | None = None  # a hint's next input, not taken yet (`WakeUp.ahead`)
    text: list[str] = field(default_factory=list)


NOT_HOSTED = Hosted(epoch=-1)


def drained(hosted: Hosted, drain: asyncio.Task[None]) -> None:
    """An idle Worker keeps no task and no text: a member holds thousands after their runs."""
    if hosted.drain is drain:
        hosted.drain = None
        hosted.text.clear()
        hosted.ahead = None
