"""`RedisStore`: the fleet's store. Worker state lives in Redis; every step is one Lua script
over one Worker's keys (one hash tag), so it is atomic and Redis Cluster safe.

Key layout and entry formats: shared/keys.py and docs/redis-layout.md. Host-side writes are
fenced by the lease epoch (a run's appends and finish by its run id too) inside their scripts;
a refused write raises `LeaseLost` and writes nothing. Redis being away surfaces as
`RuntimeUnavailable` (see `_scripts.translate_errors`).
This module holds the fleet's roles (members, placement hints, schedules, health) over its
parts: the connection and the gateway's steps in `_redis_core.py`, the host side in
`_redis_host.py`, the readers in `_redis_readers.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

from runtime_worker.store._redis_host import RedisHostSide
from runtime_worker.store._redis_members import MemberView
from runtime_worker.store._redis_readers import RedisReaders
from runtime_worker.store._redis_webhooks import RedisWebhooks
from runtime_worker.store._scripts import answer, translate_errors
from shared.models import MemberInfo


class RedisStore(RedisWebhooks, RedisHostSide, RedisReaders):
    """Give it a client (one server or a cluster) with `decode_responses=True` (as `from_url`
    makes); `aclose` closes the client only when the store made it."""

    # -- members and health ----------------------------------------------------------------------

    @translate_errors
    async def heartbeat(self, member_id: str, capacity: int, hosted: int) -> None:
        """A member says it is alive, with its capacity and how many Workers it hosts."""
        await self._members.heartbeat(member_id, capacity, hosted)

    @translate_errors
    async def forget_member(self, member_id: str) -> None:
        """A member leaving gracefully."""
        await self._members.forget(member_id)

    @translate_errors
    async def drain_member(self, member_id: str) -> bool:
        return await self._members.drain(member_id)

    @translate_errors
    async def member_draining(self, member_id: str) -> bool:
        return await self._members.draining(member_id)

    @translate_errors
    async def members(self) -> list[MemberInfo]:
        return await self._members.list()

    @translate_errors
    async def member_views(self) -> list[MemberView]:
        """`members`, each with how long it has been silent (placement times deaths by it)."""
        return await self._members.views()

    @property
    def member_alive_ms(self) -> int:
        """How long a member counts as alive after its last heartbeat."""
        return self._members.alive_ms

    @translate_errors
    async def announce_placement(self, worker_ids: Sequence[str]) -> None:
        await self._placement.announce(worker_ids)

    @translate_errors
    async def placement_cursor(self) -> str:
        return await self._placement.newest()

    @translate_errors
    async def wait_placement(self, last_id: str, timeout_ms: int) -> tuple[list[str], str]:
        return await self._placement.wait(last_id, timeout_ms)

    @translate_errors
    async def put_schedule(self, schedule_id: str, entry_json: str) -> None:
        await self._schedules.put(schedule_id, entry_json)

    @translate_errors
    async def remove_schedule(self, schedule_id: str) -> bool:
        return await self._schedules.remove(schedule_id)

    @translate_errors
    async def schedules(self) -> tuple[dict[str, str], dict[str, str]]:
        return await self._schedules.all()

    @translate_errors
    async def mark_schedule(self, schedule_id: str, slot: int) -> None:
        await self._schedules.mark(schedule_id, slot)

    @translate_errors
    async def ping(self) -> None:
        await answer(self.client.ping())
