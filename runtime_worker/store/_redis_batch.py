"""Many Workers per round trip: pipelined per-Worker scripts and reads (leases, placement, sweeps).

Every script still touches the keys of one Worker only (one hash tag, Redis Cluster safe);
pipelining them keeps a member's step at a round trip or two however many Workers it hosts (on a
cluster, a round trip per node, side by side: `_redis_transport`).
Pipelines are cut into chunks so a member's memory does not peak with the size of the fleet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis import exceptions as rex
from redis.commands.core import AsyncScript

from runtime_worker.store._redis_transport import CHUNK as CHUNK
from runtime_worker.store._redis_transport import Route, Routed, Transport
from shared.models import WorkerState

Arg = str | int | bytes


@dataclass(frozen=True, slots=True)
class PackedKeys:
    """A script's KEYS already in RESP (`pack`), and the first of them (it routes the call):
    a renewal packs each lease's keys once, not a list of strings per call."""

    first: str
    count: int
    data: bytes


@dataclass(frozen=True, slots=True)
class PackedArgs:
    """A script's ARGV already in RESP: a node's renewal packs its leases once, as keys."""

    count: int
    data: bytes


Call = tuple[Sequence[str] | PackedKeys, Sequence[Arg] | PackedArgs]
"""A script's KEYS and ARGV."""


def pack(*args: Arg) -> bytes:
    """Arguments in RESP, to build commands with. redis-py's own packing costs more than the
    round trip once a member sends thousands of small commands; these hold text and integers."""
    parts = []
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def pack_one(arg: str) -> bytes:
    """`pack(arg)` of one key, for a renewal's thousands (one format, no loop)."""
    data = arg.encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def command(count: int) -> bytes:
    """The header of a command of `count` arguments (its name included)."""
    return b"*%d\r\n" % count


def packed(*args: Arg) -> Routed:
    """A whole command in RESP, for `send_many`, routed by its first argument (its key)."""
    return str(args[1]), command(len(args)) + pack(*args)


def evalsha(sha: str, keys: Sequence[str], args: Sequence[Arg]) -> Routed:
    return keys[0], command(3 + len(keys) + len(args)) + pack(
        "EVALSHA", sha, len(keys), *keys, *args
    )


async def send_many(
    transport: Transport,
    commands: Sequence[Routed],
    *,
    replicated: bool = False,
    route: Route | None = None,
) -> list[Any]:
    """The replies of many commands (each from `packed` or `evalsha`), batched per connection
    (per node, on a cluster); an error reply is returned in its place. `replicated`, `route`:
    see `Transport.send`."""
    return await transport.send(commands, replicated=replicated, route=route)


async def evalsha_many(
    transport: Transport, script: AsyncScript, calls: Sequence[Call], *, replicated: bool = False
) -> list[Any]:
    """Run `script` once per call, batched; the replies in call order. A script Redis lost
    (restart, SCRIPT FLUSH, a promoted replica) is loaded and the calls it refused run again;
    any other error reply raises (after the whole batch ran, as a pipeline does)."""
    packed = _evalsha(script.sha, calls)
    replies = await send_many(transport, packed, replicated=replicated)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, rex.NoScriptError)]
    if missing:  # loaded where it was missing (on a cluster: those nodes only)
        script.sha = await transport.load(str(script.script), [packed[i][0] for i in missing])
        retry = _evalsha(script.sha, [calls[i] for i in missing])
        again = await send_many(transport, retry, replicated=replicated)
        for index, reply in zip(missing, again, strict=True):
            replies[index] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def _evalsha(sha: str, calls: Sequence[Call]) -> list[Routed]:
    packed = []
    head = pack("EVALSHA", sha)
    for keys, args in calls:
        argc, argv = (args.count, args.data) if isinstance(args, PackedArgs) else _packed(args)
        if isinstance(keys, PackedKeys):
            count = command(3 + keys.count + argc)
            packed.append((keys.first, count + head + pack(keys.count) + keys.data + argv))
        else:
            count = command(3 + len(keys) + argc)
            packed.append((keys[0], count + head + pack(len(keys), *keys) + argv))
    return packed


def _packed(args: Sequence[Arg]) -> tuple[int, bytes]:
    return len(args), pack(*args)


async def hmget_many(
    transport: Transport, keys: Sequence[str], fields: Sequence[str]
) -> list[list[Any]]:
    """HMGET the same fields of many hashes, batched; all None for a missing hash."""
    head, tail = command(2 + len(fields)) + pack("HMGET"), pack(*fields)
    replies = await send_many(transport, [(key, head + pack(key) + tail) for key in keys])
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


@dataclass(frozen=True, slots=True)
class Acquisition:
    """One Worker's answer to a member's batched acquire. Taken: `epoch` > 0, with what the new
    host needs to know at once (its profile and name, and whether inputs are waiting). Not
    taken: `epoch` 0, with who holds the lease and for how much longer (`holder` None when the
    Worker has ended or vanished)."""

    epoch: int
    profile: str = ""
    display_name: str = ""
    busy: bool = False
    holder: str | None = None
    expires_ms: int = 0


def parse_acquisition(reply: Sequence[Any]) -> Acquisition | None:
    """acquire.lua's reply; None when the Worker does not exist."""
    status, *rest = reply
    if status != "ok":
        return None
    epoch = int(rest[0])
    if epoch:
        profile, display_name, busy = rest[1:4]
        return Acquisition(epoch, str(profile), str(display_name), busy=bool(int(busy)))
    if len(rest) >= 3 and rest[1]:
        return Acquisition(0, holder=str(rest[1]), expires_ms=max(int(rest[2]), 0))
    return Acquisition(0)


PLACEMENT_FIELDS = ("state", "host", "epoch", "next_seq", "done_seq", "run_id")


@dataclass(frozen=True, slots=True)
class Placement:
    """What placement needs to know of one Worker, read without the rest of its record."""

    worker_id: str
    state: WorkerState
    host: str | None
    epoch: int
    queue_depth: int
    run_id: str | None


@dataclass(frozen=True, slots=True)
class PlacementRead:
    """A placement read: `rows` of the Workers read, and whether every Worker was. Not
    `complete` on a cluster with a node that did not answer: its Workers are missing from
    `rows` (neither gone nor unhosted: unknown), so a sweep must not act on their absence."""

    rows: list[Placement]
    complete: bool = True


def parse_placement(worker_id: str, row: Sequence[Any]) -> Placement | None:
    """One HMGET row of `PLACEMENT_FIELDS`; None when the Worker's record is gone."""
    state, host, epoch, next_seq, done_seq, run_id = row
    if state is None:
        return None
    return Placement(
        worker_id=worker_id,
        state=WorkerState(state),
        host=host,
        epoch=int(epoch or 0),
        queue_depth=int(next_seq or 0) - int(done_seq or 0),
        run_id=run_id,
    )
