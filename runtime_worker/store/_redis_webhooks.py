"""`WebhookStore` on Redis. A Worker's webhook URL and last delivery are fields of its record
(`hook_url`, `hook_last`); pending deliveries are runtime-wide (`Keys.hooks`, `hooks_due`,
`hooks_stats`: one hash tag, so each script below touches one Redis Cluster slot)."""

from __future__ import annotations

import functools

from redis.commands.core import AsyncScript

from runtime_worker.store import _redis_codec as codec
from runtime_worker.store._redis_client import Client
from runtime_worker.store._scripts import answer, translate_errors
from runtime_worker.store.base import WorkerRecord
from runtime_worker.store.webhooks import PendingDelivery, WebhookStore
from shared.errors import WorkerNotFound
from shared.keys import Keys
from shared.webhooks import WebhookDelivery

# KEYS: record. ARGV: url ('' removes it). Reply: the record's fields, or {} when none.
_SET_URL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
if ARGV[1] == '' then redis.call('HDEL', KEYS[1], 'hook_url')
else redis.call('HSET', KEYS[1], 'hook_url', ARGV[1]) end
return redis.call('HGETALL', KEYS[1])
"""
# KEYS: record. ARGV: the last delivery's JSON. A Worker whose keys expired stays gone.
_SET_LAST = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'hook_last', ARGV[1]) end
return 1
"""
# KEYS: hooks, due. ARGV: id, entry JSON, due ms.
_ENQUEUE = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
"""
# KEYS: hooks, due. ARGV: now ms, lease end ms, limit. Reply: the claimed entries' JSON.
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local entry = redis.call('HGET', KEYS[1], id)
  if entry then
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    out[#out + 1] = entry
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
return out
"""
# KEYS: hooks, due, stats. ARGV: id, run id, retry at ms ('' drops it), entry JSON, outcome
# ('' counts nothing). Only the entry of this run is changed: a rerun's newer one stays.
_SETTLE = """
if ARGV[5] ~= '' then redis.call('HINCRBY', KEYS[3], ARGV[5], 1) end
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry or cjson.decode(entry)['run_id'] ~= ARGV[2] then return 0 end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
end
return 1
"""


class RedisWebhooks(WebhookStore):
    """A mixin of `RedisStore` (which gives the client, keys and call deadline)."""

    client: Client
    keys: Keys
    runtime_id: str
    call_timeout_s: float

    @functools.cached_property
    def _hook_scripts(self) -> dict[str, AsyncScript]:
        sources = {
            "set_url": _SET_URL,
            "set_last": _SET_LAST,
            "enqueue": _ENQUEUE,
            "claim": _CLAIM,
            "settle": _SETTLE,
        }
        return {name: AsyncScript(self.client, text) for name, text in sources.items()}  # type: ignore[arg-type]

    def _hook_keys(self) -> list[str]:
        return [self.keys.hooks(), self.keys.hooks_due(), self.keys.hooks_stats()]

    @translate_errors
    async def set_webhook(self, worker_id: str, url: str | None) -> WorkerRecord:
        try:
            record_key = self.keys.record(worker_id)
        except ValueError:
            raise WorkerNotFound(f"no worker {worker_id}") from None
        flat = await self._hook_scripts["set_url"](keys=[record_key], args=[url or ""])
        if not flat:
            raise WorkerNotFound(f"no worker {worker_id}")
        return codec.record_from_fields(dict(zip(flat[::2], flat[1::2], strict=True)))

    @translate_errors
    async def enqueue_delivery(self, delivery: PendingDelivery, due_ms: int) -> None:
        await self._hook_scripts["enqueue"](
            keys=self._hook_keys()[:2], args=[delivery.delivery_id, delivery.to_json(), due_ms]
        )

    @translate_errors
    async def claim_deliveries(
        self, now_ms: int, lease_ms: int, limit: int
    ) -> list[PendingDelivery]:
        raw = await self._hook_scripts["claim"](
            keys=self._hook_keys()[:2], args=[now_ms, now_ms + lease_ms, limit]
        )
        return [PendingDelivery.from_json(entry) for entry in raw]

    @translate_errors
    async def settle_delivery(
        self,
        delivery: PendingDelivery,
        *,
        retry_at_ms: int | None,
        last: WebhookDelivery | None,
    ) -> None:
        args = [
            delivery.delivery_id,
            delivery.run_id,
            "" if retry_at_ms is None else retry_at_ms,
            delivery.to_json(),
            "" if last is None else last.outcome.value,
        ]
        await self._hook_scripts["settle"](keys=self._hook_keys(), args=args)
        if last is not None:
            record_key = self.keys.record(delivery.worker_id)
            await self._hook_scripts["set_last"](keys=[record_key], args=[last.model_dump_json()])

    @translate_errors
    async def delivery_counts(self) -> dict[str, int]:
        raw = await answer(self.client.hgetall(self.keys.hooks_stats()))
        return {str(name): int(count) for name, count in raw.items()}
