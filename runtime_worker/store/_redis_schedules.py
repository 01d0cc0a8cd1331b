"""Recurring inputs of one fleet runtime: a hash of schedules and a hash of the slot each one
fired last (key layout in shared/keys.py, entries documented in docs/redis-layout.md)."""

from __future__ import annotations

from redis.asyncio import Redis

from runtime_worker.store._redis_client import Client
from runtime_worker.store._scripts import answer
from shared.keys import Keys


class Schedules:
    def __init__(self, client: Client, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    async def put(self, schedule_id: str, entry_json: str) -> None:
        await answer(self._client.hset(self._keys.schedules(), schedule_id, entry_json))

    async def remove(self, schedule_id: str) -> bool:
        """Drop a schedule and its mark together; whether there was one. One slot, one node: a
        transaction on one server, two plain deletes on a cluster (a mark without its schedule
        is never read)."""
        async with self._client.pipeline(transaction=isinstance(self._client, Redis)) as pipe:
            pipe.hdel(self._keys.schedules(), schedule_id)
            pipe.hdel(self._keys.schedule_marks(), schedule_id)
            removed, _ = await pipe.execute()
        return bool(removed)

    async def all(self) -> tuple[dict[str, str], dict[str, str]]:
        """Every schedule (id → JSON entry) and every mark (id → newest slot fired)."""
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._keys.schedules())
            pipe.hgetall(self._keys.schedule_marks())
            schedules, marks = await pipe.execute()
        return dict(schedules), dict(marks)

    async def mark(self, schedule_id: str, slot: int) -> None:
        await answer(self._client.hset(self._keys.schedule_marks(), schedule_id, str(slot)))
