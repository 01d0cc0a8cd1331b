"""Conversation keys: one Worker per (profile, client key), created on first use.

The OpenAI facade lets a client name a profile and a conversation key instead of a Worker. The
key → Worker binding lives in the runtime's store (a fleet's Redis), not in a gateway, so every
gateway replica continues the same Worker. Binding happens before the Worker exists: the caller
binds a fresh id with compare-and-set and creates the Worker under that id only if it won, so
concurrent first calls create one Worker. A binding whose Worker never appeared (its creator
died) or has ended is replaced by a new Worker: the conversation starts afresh.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING

from shared.errors import RuntimeUnavailable, WorkerNotFound
from shared.ids import new_id
from shared.models import LIVE_STATES, CreateWorker, WorkerDetail

if TYPE_CHECKING:
    from runtime_worker._runtime_writes import RuntimeWrites

CREATE_WAIT_S = 5.0
"""How long a call that lost the bind waits for the winner's Worker to appear."""
POLL_S = 0.05
MAX_REBINDS = 3
DISPLAY_PREFIX = "chat-"


def conversation_digest(profile: str, key: str) -> str:
    """What the store keeps: a hash, so a client's key (maybe a user id) is never stored."""
    return hashlib.sha256(f"{profile}\n{key}".encode()).hexdigest()[:32]


async def _appeared(runtime: RuntimeWrites, worker_id: str) -> WorkerDetail | None:
    """The bound Worker once it exists, or None when it does not within `CREATE_WAIT_S`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CREATE_WAIT_S
    while True:
        try:
            return await runtime.get_worker(worker_id)
        except WorkerNotFound:
            if loop.time() >= deadline:
                return None
        await asyncio.sleep(POLL_S)


async def conversation_worker(runtime: RuntimeWrites, profile: str, key: str) -> WorkerDetail:
    """The live Worker of `key` for `profile` on `runtime`, created on first use."""
    name = runtime.profiles.get(profile).name  # an unknown profile fails before anything is bound
    digest = conversation_digest(name, key)
    ttl_s = runtime.settings.retention_s
    replace: str | None = None
    for _ in range(MAX_REBINDS):
        candidate = new_id()
        bound = await runtime.store.bind_conversation(
            digest, candidate, replace=replace, ttl_s=ttl_s
        )
        if bound == candidate:
            request = CreateWorker(display_name=DISPLAY_PREFIX + digest[:12], profile=name)
            return await runtime.create_worker(request, worker_id=candidate)
        detail = await _appeared(runtime, bound)
        if detail is not None and detail.state in LIVE_STATES:
            return detail
        replace = bound  # never created, or ended: start the conversation afresh
    raise RuntimeUnavailable("the conversation's Worker could not be bound", retryable=True)


__all__ = ["conversation_digest", "conversation_worker"]
