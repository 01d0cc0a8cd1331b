"""The values one run of an input passes across the `Store` boundary: the queued input a host
takes, the claim and history `take_run` answers with, the outcome `finish_run` writes, and the
finished runs a reader pages through.

Apart from `base.py` so the roles there read as the boundary's contract, and these records, which
a host, the stores and `outcome.py` all build or unpack, in one short place; `base.py` re-exports
every name, the one import path callers use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.events import Event
from shared.models import RunDetail, RunResult


@dataclass(frozen=True)
class QueuedInput:
    """One entry of a Worker's input stream, as a host reads it."""

    entry_id: str
    seq: int
    input_id: str
    text: str
    ts: float
    trace: Mapping[str, str] = field(default_factory=dict)  # the sender's trace context


@dataclass(frozen=True)
class RunClaim:
    """How `take_run` started the run: which attempt this is, whether the input was cancelled
    already, and the cursor of its `run_started`."""

    run_id: str
    attempt: int
    cancelled: bool
    cursor: str
    crashes: int = 0
    """Hosts this input's own run killed (see `RunAlone`): the host dead-letters the input once
    it reaches `YOI_MAX_DELIVERIES`. Redis restarts, lapsed leases and hand-backs never count."""
    host_lost: bool = False
    """A previous host of this input was lost while running it (not only away from Redis, or
    handed back): what a profile with `on_host_lost = "fail"` fails the run for."""
    ahead: bool = False
    """The take confirmed the run its host started ahead of it (`Store.take_ahead`): the same
    input as its first attempt, with the same history, and its ahead appends are let in."""


class RunAlone(Exception):
    """`take_run`'s answer instead of starting an input whose hosts were lost twice while it
    ran beside other turns (any of them may have killed them): take it again with `solo=True`,
    starting no other turn until it ends, so that a crash then is the input's own."""


@dataclass(frozen=True)
class TakenRun:
    """`take_run`'s answer: the input, its run's claim and the history its turn needs: (role,
    text) of the newest transcript entries, oldest first (this input's own entry last)."""

    item: QueuedInput
    claim: RunClaim
    history: list[tuple[str, str]]


@dataclass(frozen=True)
class TakenAhead:
    """`take_ahead`'s answer: the run as the host may start it now (`guess`: the input from its
    hint, attempt 1, the host's copy of the history; its entry id and cursor are not known yet),
    and the take under way (`taken`: what `take_run` would answer, `claim.ahead` True when it
    confirmed the guess). Whoever gets it owns `taken`: it awaits or cancels it."""

    guess: TakenRun
    taken: asyncio.Task[TakenRun | None]


@dataclass(frozen=True)
class RunOutcome:
    """What `finish_run` writes after the run's deltas: final text, usage and the result.
    `deltas`: the run's last `text_delta` events not written yet; `finish_run` writes them
    first, so the end of an answer costs one write, not two."""

    result: RunResult
    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    reason: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    error_retryable: bool = False  # the `error` event's `retryable`: trying again may succeed
    deltas: tuple[Event, ...] = ()


@dataclass(frozen=True)
class RunLogPage:
    """Finished runs with their log cursors, newest first; `next_before` pages further back
    (None at the start)."""

    runs: list[tuple[str, RunDetail]]
    next_before: str | None
