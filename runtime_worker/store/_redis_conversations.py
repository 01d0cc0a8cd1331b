"""Conversation bindings of one fleet runtime (the OpenAI facade's keys): one string key per
conversation digest holding the worker id, compare-and-set by `lua/bind_conversation.lua`, kept
`ttl_s` past its last use (layout in shared/keys.py and docs/redis-layout.md)."""

from __future__ import annotations

from runtime_worker.store._scripts import Scripts, argv, check
from shared.keys import Keys


class Conversations:
    def __init__(self, keys: Keys, scripts: Scripts) -> None:
        self._keys = keys
        self._scripts = scripts

    async def bind(self, conversation: str, worker_id: str, replace: str | None, ttl_s: int) -> str:
        args = argv(
            "bind_conversation", worker_id=worker_id, replace=replace or "", ttl_ms=ttl_s * 1000
        )
        key = self._keys.conversation(conversation)
        (bound,) = check(await self._scripts.bind_conversation([key], args))
        return str(bound)
