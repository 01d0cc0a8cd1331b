"""`Store.bind_conversation` in memory: conversation digest → worker id, kept as long as the
process (the embedded runtime's Workers live no longer), so there is no expiry to keep."""

from __future__ import annotations


class MemoryConversations:
    """A mixin of `MemoryStore`; each method is atomic on the event loop (no await inside)."""

    _bound: dict[str, str] | None = None  # made on first use: MemoryStore's __init__ stays as is

    async def bind_conversation(
        self, conversation: str, worker_id: str, *, replace: str | None, ttl_s: int
    ) -> str:
        if self._bound is None:
            self._bound = {}
        bound = self._bound.get(conversation)
        if bound is None or bound == replace:
            self._bound[conversation] = bound = worker_id
        return bound
