"""Scope claims of one fleet runtime, in one Redis hash (one hash tag) changed by compare-and-set.

The hash maps worker id → claim JSON `{"v":1,"g":<group>,"s":[entries],"ts":<ms>}` plus a
version field. A claim group is the root Worker's id; a delegated child joins its parent's group
and must be covered by the parent's claim. Overlap is judged in Python (runtime_worker/scope.py),
then written by a script that refuses when the hash changed since it was read (then we re-read).
Workers with an empty scope claim nothing and store nothing.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass

from runtime_worker import scope as scopes
from runtime_worker.store._redis_client import Client
from runtime_worker.store._redis_codec import ENTRY_VERSION, parse_scope, scope_json
from runtime_worker.store._scripts import Scripts, answer, argv
from shared.errors import (
    InvalidInput,
    RuntimeUnavailable,
    ScopeConflict,
    WorkerNotFound,
    WorkerStopped,
)
from shared.keys import SCOPES_VERSION_FIELD, Keys, is_worker_key_part
from shared.models import LIVE_STATES, ScopeEntry, WorkerState
from shared.timeutil import now_ms

CLAIM_ATTEMPTS = 20
UNBORN_GRACE_MS = 30_000
"""A claim is made just before its Worker is created: a claim whose Worker does not exist yet
counts as live this long, so a concurrent create cannot reclaim it in that gap."""


@dataclass(frozen=True)
class Claim:
    group: str
    scope: list[ScopeEntry]
    ts_ms: int

    @classmethod
    def parse(cls, raw: str) -> Claim:
        data = json.loads(raw)
        return cls(str(data["g"]), parse_scope(json.dumps(data["s"])), int(data.get("ts", 0)))

    def dump(self) -> str:
        scope = json.loads(scope_json(self.scope))
        body = {"v": ENTRY_VERSION, "g": self.group, "s": scope, "ts": self.ts_ms}
        return json.dumps(body, separators=(",", ":"))


class ScopeClaims:
    def __init__(self, client: Client, keys: Keys, scripts: Scripts) -> None:
        self._client = client
        self._keys = keys
        self._scripts = scripts

    async def claim(
        self, worker_id: str, scope: Sequence[ScopeEntry], delegated_from: str | None
    ) -> None:
        if not is_worker_key_part(worker_id):
            raise InvalidInput("not a worker id")
        if delegated_from is not None:
            state = await self._state(delegated_from)
            if state is None:
                raise WorkerNotFound(f"no worker {delegated_from}")
            if state not in LIVE_STATES:
                raise WorkerStopped(f"parent worker {delegated_from} is not live")
        if not scope:
            return  # claims nothing, conflicts with nothing, is covered by anything
        for attempt in range(CLAIM_ATTEMPTS):
            raw = await answer(self._client.hgetall(self._keys.scopes()))
            version = raw.pop(SCOPES_VERSION_FIELD, "0")
            claims = {wid: Claim.parse(value) for wid, value in raw.items()}
            group = self._group(worker_id, scope, delegated_from, claims)
            stale = await self._stale_conflicts(scope, group, claims)
            mine = Claim(group, list(scope), now_ms())
            reply = await self._scripts.claim_scope(
                [self._keys.scopes()],
                argv("claim_scope", stale, version=version, worker_id=worker_id, claim=mine.dump()),
            )
            if reply[0] == "ok":
                return
            await asyncio.sleep(random.uniform(0.001, 0.005) * (attempt + 1))  # claims moved
        raise RuntimeUnavailable("scope claims are too contended, try again", retryable=True)

    async def release(self, worker_id: str) -> None:
        if is_worker_key_part(worker_id):
            await answer(self._client.hdel(self._keys.scopes(), worker_id))

    def _group(
        self,
        worker_id: str,
        scope: Sequence[ScopeEntry],
        delegated_from: str | None,
        claims: dict[str, Claim],
    ) -> str:
        if delegated_from is None:
            return worker_id
        parent = claims.get(delegated_from)
        parent_scope = parent.scope if parent else []
        if not scopes.covers(parent_scope, scope):
            raise ScopeConflict("a delegated worker may only hold a subset of its parent's scope")
        return parent.group if parent else delegated_from

    async def _stale_conflicts(
        self, scope: Sequence[ScopeEntry], group: str, claims: dict[str, Claim]
    ) -> list[str]:
        """Claims overlapping ours outside our group: stale ones to drop, or a live conflict."""
        stale = []
        for other, claim in claims.items():
            if claim.group == group or not scopes.conflicts(scope, claim.scope):
                continue
            state = await self._state(other)
            unborn = state is None and now_ms() - claim.ts_ms < UNBORN_GRACE_MS
            if unborn or (state is not None and state in LIVE_STATES):
                raise ScopeConflict("the requested write scope overlaps a live worker's scope")
            stale.append(other)
        return stale

    async def _state(self, worker_id: str) -> WorkerState | None:
        if not is_worker_key_part(worker_id):
            return None
        state = await answer(self._client.hget(self._keys.record(worker_id), "state"))
        return None if state is None else WorkerState(state)
