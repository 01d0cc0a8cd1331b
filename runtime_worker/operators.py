"""What operators read and steer on a runtime, beyond the `Runtime` API people use: every Worker
with where and how it runs (the fleet dashboard), and draining a member. Kept apart from
`runtime.py` so that the Runtime stays the small surface a conversation needs."""

from __future__ import annotations

from runtime_worker.runtime import Runtime
from shared.errors import InvalidInput
from shared.keys import is_member_key_part
from shared.models import MemberInfo, WorkerRow


async def worker_rows(runtime: Runtime) -> list[WorkerRow]:
    """Every Worker of the runtime, oldest first, with host, epoch, queue depth and usage:
    one read of the records, not a detail request per Worker."""
    records = sorted(await runtime.store.list_workers(), key=lambda r: r.created_at)
    return [
        WorkerRow(
            **runtime.summary_fields(record),
            host=record.host,
            epoch=record.epoch,
            queue_depth=record.queue_depth,
            usage=record.usage,
        )
        for record in records
    ]


async def drain_member(runtime: Runtime, member_id: str) -> MemberInfo:
    """Flag a member to drain and answer it as now listed. Unknown member: `invalid_input`;
    a runtime without members (embedded): `unsupported_operation`."""
    if not is_member_key_part(member_id):
        raise InvalidInput("malformed member id")
    if not await runtime.store.drain_member(member_id):
        raise InvalidInput(f"runtime {runtime.runtime_id} has no member {member_id}")
    for member in await runtime.members():
        if member.member_id == member_id:
            return member
    raise InvalidInput(f"member {member_id} left runtime {runtime.runtime_id}")


__all__ = ["drain_member", "worker_rows"]
