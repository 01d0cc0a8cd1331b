"""Members of one fleet runtime (diagnostics and placement): one hash, member id → JSON
`{"v":1,"capacity":n,"hosted":n,"seen_ms":t}` written by each member's heartbeat."""

from __future__ import annotations

import json
from dataclasses import dataclass

from redis.asyncio import Redis

from runtime_worker.store._redis_codec import ENTRY_VERSION
from runtime_worker.store._scripts import answer
from shared.keys import Keys
from shared.models import MemberInfo
from shared.timeutil import now_ms

FORGET_AFTER_MS = 600_000
"""A member silent this long is dropped from the hash on the next read."""


@dataclass(frozen=True)
class MemberView:
    """A member as the registry shows it, with how long ago its last heartbeat was written:
    it is declared dead `alive_ms - silent_ms` from now unless it beats again."""

    info: MemberInfo
    silent_ms: int


class Members:
    def __init__(self, client: Redis, keys: Keys, alive_ms: int) -> None:
        self._client = client
        self._keys = keys
        self.alive_ms = alive_ms

    async def heartbeat(self, member_id: str, capacity: int, hosted: int) -> None:
        body = {"v": ENTRY_VERSION, "capacity": capacity, "hosted": hosted, "seen_ms": now_ms()}
        value = json.dumps(body, separators=(",", ":"))
        await answer(self._client.hset(self._keys.members(), member_id, value))

    async def forget(self, member_id: str) -> None:
        await answer(self._client.hdel(self._keys.members(), member_id))

    async def views(self) -> list[MemberView]:
        """Every member not yet forgotten, each with how long it has been silent."""
        raw: dict[str, str] = await answer(self._client.hgetall(self._keys.members()))
        now = now_ms()
        found, forgotten = [], []
        for member_id, value in sorted(raw.items()):
            data = json.loads(value)
            silent_ms = now - int(data["seen_ms"])
            if silent_ms > FORGET_AFTER_MS:
                forgotten.append(member_id)
                continue
            info = MemberInfo(
                member_id=member_id,
                capacity=int(data["capacity"]),
                hosted=int(data["hosted"]),
                alive=silent_ms <= self.alive_ms,
            )
            found.append(MemberView(info, silent_ms))
        if forgotten:
            await answer(self._client.hdel(self._keys.members(), *forgotten))
        return found

    async def list(self) -> list[MemberInfo]:
        return [view.info for view in await self.views()]
