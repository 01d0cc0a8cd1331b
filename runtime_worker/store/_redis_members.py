"""Members of one fleet runtime (diagnostics and placement): one hash, member id → JSON
`{"v":1,"capacity":n,"hosted":n,"seen_ms":t}` written by each member's heartbeat, and the drain
flags operators set (`yoi drain`), cleared when the member leaves.

`seen_ms` is read on the fleet clock (lua/beat.lua): Redis's TIME, standing still while no
member reaches Redis. Ages are only ever computed inside Redis, so a member whose own clock is
30 s off is judged like any other, and a Redis restart does not make every member look dead."""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass
from typing import Any

from runtime_worker.store._redis_client import Client
from runtime_worker.store._scripts import Scripts, answer, argv
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
    boot: str = ""


class Members:
    def __init__(
        self, client: Client, keys: Keys, scripts: Scripts, alive_ms: int, heartbeat_ms: int
    ) -> None:
        self._client = client
        self._keys = keys
        self._scripts = scripts
        self._clock_keys = [keys.members(), keys.member_clock()]
        # This process's incarnation: a member restarted under the same id is another host.
        self.boot = secrets.token_hex(4)
        self.alive_ms = alive_ms
        # The fleet clock counts a silence of the whole fleet as at most two heartbeats.
        self._gap_ms = 2 * heartbeat_ms

    async def heartbeat(self, member_id: str, capacity: int, hosted: int) -> None:
        args = argv(
            "beat",
            member=member_id,
            boot=self.boot,
            capacity=capacity,
            hosted=hosted,
            gap_ms=self._gap_ms,
        )
        await answer(self._scripts.beat(self._clock_keys, args))

    async def forget(self, member_id: str) -> None:
        await answer(self._client.hdel(self._keys.members(), member_id))
        await answer(self._client.hdel(self._keys.drains(), member_id))

    async def drain(self, member_id: str) -> bool:
        """Flag a registered member to drain; False when no such member is registered."""
        if not await answer(self._client.hexists(self._keys.members(), member_id)):
            return False
        await answer(self._client.hsetnx(self._keys.drains(), member_id, str(now_ms())))
        return True

    async def draining(self, member_id: str) -> bool:
        return bool(await answer(self._client.hexists(self._keys.drains(), member_id)))

    async def views(self) -> list[MemberView]:
        """Every member not yet forgotten, each with how long it has been silent."""
        reply: list[Any] = await answer(
            self._scripts.members(self._clock_keys, argv("members", gap_ms=self._gap_ms))
        )
        now, flat = int(reply[0]), reply[1]
        raw = dict(zip(flat[::2], flat[1::2], strict=True))
        drains: dict[str, str] = await answer(self._client.hgetall(self._keys.drains()))
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
                draining=member_id in drains,
                heartbeat_age_ms=max(0, silent_ms),
            )
            found.append(MemberView(info, silent_ms, str(data.get("boot", ""))))
        if forgotten:
            await answer(self._client.hdel(self._keys.members(), *forgotten))
            await answer(self._client.hdel(self._keys.drains(), *forgotten))
        return found

    def host_tag(self, member_id: str) -> str:
        """What an attempt records as its host: the member and this process's incarnation."""
        return f"{member_id} {self.boot}"

    async def lost(self, host_tag: str) -> bool:
        """Whether the host of `host_tag` has stopped heartbeating (on the fleet clock): its
        member is gone from the registry, beats from another process now (restarted under the
        same id), or is silent past `alive_ms` with no heartbeat while this waits. A member
        that beat within two heartbeats, or beats again meanwhile (it had only lost Redis, or
        a lease), is not lost. A takeover comes a lease TTL after the host's last renewal, when
        a dead host has been silent for most of `alive_ms`, so the wait is short."""
        member_id, _, boot = host_tag.rpartition(" ")
        previous: int | None = None
        poll_s = max(self._gap_ms / 8000, 0.02)
        for _ in range(int(self.alive_ms / 1000 / poll_s) + 2):
            view = next((v for v in await self.views() if v.info.member_id == member_id), None)
            if view is None or view.boot != boot or view.silent_ms > self.alive_ms:
                return True
            beat_since = previous is not None and view.silent_ms < previous
            if view.silent_ms <= self._gap_ms or beat_since:
                return False  # beating: within two heartbeats, or once since the last look
            previous = view.silent_ms
            await asyncio.sleep(poll_s)
        return False

    async def list(self) -> list[MemberInfo]:
        return [view.info for view in await self.views()]
