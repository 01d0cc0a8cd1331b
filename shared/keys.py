"""Every Redis key of the fleet, built here and nowhere else (docs/redis-layout.md).

The hash-tag rule lives in `_tag`: all keys of one Worker share the tag `{<ns>:<runtime>:<worker>}`
so a script over them stays on one Redis Cluster slot; runtime-wide keys share `{<ns>:<runtime>}`
and each member's doorbell has a tag of its own. The namespace and runtime id lead every tag, so
several fleet runtimes and namespaces share one Redis without collision.
"""

from __future__ import annotations

import binascii
import functools
import re
from dataclasses import dataclass

# Ids that go into a tag may not contain braces (they would move the tag). Worker ids may not
# contain ":" either, so no worker tag can equal a member's `...:m:<member>` tag.
_WORKER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_MEMBER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_DIGEST_RE = re.compile(r"^[0-9a-f]{16,64}$")

INPUT_GROUP = "hosts"
"""The consumer group of every input stream: the members of the runtime. The Lua scripts get it
from here (runtime_worker/store/_scripts.py defines it above their prelude)."""

SCOPES_VERSION_FIELD = "#v"
"""A field of the scopes hash counting claim changes (worker ids never start with `#`);
lua/claim_scope.lua gets it from here, as INPUT_GROUP."""


def is_worker_key_part(value: str) -> bool:
    """Whether a worker id can go into a key."""
    return bool(_WORKER_RE.match(value))


def is_member_key_part(value: str) -> bool:
    """Whether a member id can go into a key."""
    return bool(_MEMBER_RE.match(value))


@dataclass(frozen=True)
class WorkerKeys:
    """The keys of one Worker, in the order every per-worker script takes them as KEYS."""

    record: str
    inputs: str
    events: str
    transcript: str
    input_ids: str
    input_ids_old: str
    lease: str

    def all(self) -> list[str]:
        return [
            self.record,
            self.inputs,
            self.events,
            self.transcript,
            self.input_ids,
            self.input_ids_old,
            self.lease,
        ]


class Keys:
    """Key builder of one fleet runtime in one namespace."""

    def __init__(self, namespace: str, runtime_id: str) -> None:
        if not _SLUG_RE.match(namespace) or not _SLUG_RE.match(runtime_id):
            raise ValueError("namespace and runtime id must be slugs")
        self.namespace = namespace
        self.runtime_id = runtime_id
        self._hints_around: dict[int, tuple[str, str]] = {}  # by slot: one per submit otherwise

    def _tag(self, *parts: str) -> str:
        return "{" + ":".join((self.namespace, self.runtime_id, *parts)) + "}"

    # -- one Worker ------------------------------------------------------------------------------

    def worker(self, worker_id: str) -> WorkerKeys:
        if not is_worker_key_part(worker_id):
            raise ValueError(f"not a worker id usable in a key: {worker_id!r}")
        tag = self._tag(worker_id)
        return WorkerKeys(
            record=f"{tag}:w",
            inputs=f"{tag}:in",
            events=f"{tag}:ev",
            transcript=f"{tag}:tr",
            input_ids=f"{tag}:ids",
            input_ids_old=f"{tag}:ids0",
            lease=f"{tag}:lease",
        )

    def record(self, worker_id: str) -> str:
        """`worker(worker_id).record` without building the other keys (sweeps make thousands)."""
        if not is_worker_key_part(worker_id):
            raise ValueError(f"not a worker id usable in a key: {worker_id!r}")
        return f"{self._tag(worker_id)}:w"

    def lease_or_none(self, worker_id: str) -> str | None:
        """`worker(worker_id).lease`, or None for an id no key can hold: a renewal builds one
        for every hosted Worker every few seconds, not all seven keys."""
        if not is_worker_key_part(worker_id):
            return None
        return f"{self._tag(worker_id)}:lease"

    def events(self, worker_id: str) -> str:
        return self.worker(worker_id).events

    def transcript(self, worker_id: str) -> str:
        return self.worker(worker_id).transcript

    def inputs(self, worker_id: str) -> str:
        return self.worker(worker_id).inputs

    def lease(self, worker_id: str) -> str:
        return self.worker(worker_id).lease

    # -- the runtime -----------------------------------------------------------------------------

    def workers(self) -> str:
        """ZSET worker id → created_at: the index `list_workers` walks."""
        return self._tag() + ":workers"

    def scopes(self) -> str:
        """HASH worker id → JSON scope claim, plus the version field."""
        return self._tag() + ":scopes"

    def members(self) -> str:
        """HASH member id → JSON capacity and heartbeat (`seen_ms` on the fleet clock)."""
        return self._tag() + ":members"

    def member_clock(self) -> str:
        """HASH `real_ms` (Redis TIME at the last heartbeat) and `fleet_ms`: the clock heartbeat
        ages are read on, which stands still while no member reaches Redis."""
        return self._tag() + ":clock"

    def drains(self) -> str:
        """HASH member id → when an operator told it to drain (ms); the member honours it."""
        return self._tag() + ":drains"

    def bell(self, member_id: str) -> str:
        """STREAM of wake-up hints for one member; its own tag, so members spread over slots."""
        if not is_member_key_part(member_id):
            raise ValueError(f"not a member id usable in a key: {member_id!r}")
        return self._tag("m", member_id) + ":bell"

    @functools.cached_property
    def bell_around(self) -> tuple[str, str]:
        """`bell(m)` is `prefix + m + suffix`: for a script that names a member's doorbell (and
        its pub/sub channel of the same name) from the member id it reads."""
        marker = "MEMBER"  # upper case: no namespace or runtime id (lower-case slugs) holds it
        prefix, _, suffix = self.bell(marker).partition(marker)
        return prefix, suffix

    def hint_channel(self, member_id: str, slot: int) -> str:
        """Shard channel (`SSUBSCRIBE`) of a member's new-input hints for Workers of one
        cluster slot: tagged with that slot's own tag (`slot_tag`), so submit.lua, whose keys
        are one Worker's, may `SPUBLISH` on it (a script touches one slot only)."""
        if not is_member_key_part(member_id):
            raise ValueError(f"not a member id usable in a key: {member_id!r}")
        return (
            "{"
            + slot_tag(slot)
            + "}:"
            + ":".join((self.namespace, self.runtime_id, "m", member_id))
            + ":hint"
        )

    def hint_around(self, worker_id: str) -> tuple[str, str]:
        """`hint_channel(m, slot of worker_id)` is `prefix + m + suffix` (for submit.lua)."""
        slot = self.worker_slot(worker_id)
        around = self._hints_around.get(slot)
        if around is None:
            marker = "MEMBER"
            prefix, _, suffix = self.hint_channel(marker, slot).partition(marker)
            around = self._hints_around[slot] = (prefix, suffix)
        return around

    def worker_slot(self, worker_id: str) -> int:
        """The cluster slot of every key of `worker_id`."""
        return key_slot(self.record(worker_id))

    def mux_bell(self, token: str) -> str:
        """STREAM that wakes one gateway reader's blocking read of many Workers' events (its
        `XREAD` follows this key too) when a Worker joins it: a few entries, expiring once
        that reader stops ringing (`token` names the reader, made at random)."""
        if not _IDENT_RE.match(token):
            raise ValueError(f"not a reader token usable in a key: {token!r}")
        return self._tag() + f":mux:{token}"

    # -- membership and placement (member process) -----------------------------------------------
    # Runtime-wide, so they share the runtime tag `{<ns>:<runtime>}` (the members hash is above).

    def placement(self) -> str:
        """STREAM of placement hints, field `w` = a Worker id that was created or handed back
        (or `ws` = the space-separated ids of up to 100 Workers of a batch create): every
        member reads it (no group) so one with spare capacity takes the Worker at once."""
        return self._tag() + ":place"

    def unhosted(self) -> str:
        """SET of Workers that may need a host: added beside the script that makes one so
        (create, release), removed by the member that takes one. What a steady-state sweep
        reads instead of every record; the periodic full sweep repairs what an outage lost."""
        return self._tag() + ":free"

    def arq_queue(self) -> str:
        """ZSET: arq's queue of this runtime's scheduled work (deferred inputs, housekeeping)."""
        return self._tag() + ":arq"

    def arq_job_id(self, kind: str, ident: str) -> str:
        """An arq job id. arq keys a job as `arq:job:<id>` (and result, lock alike); the tag inside
        the id puts those keys in this runtime's namespace and on the queue's slot."""
        if not _WORKER_RE.match(kind) or not _IDENT_RE.match(ident):
            raise ValueError(f"not usable in a job id: {kind!r}, {ident!r}")
        return self._tag() + f":{kind}:{ident}"

    def arq_cron(self, job: str) -> str:
        """The name of a periodic arq job; arq derives each run's job id (`<name>:<ms>`) from it,
        so it carries the queue's tag too."""
        if not _WORKER_RE.match(job):
            raise ValueError(f"not usable in a job name: {job!r}")
        return self._tag() + f":cron:{job}"

    def conversation(self, digest: str) -> str:
        """STRING: the worker id an OpenAI-facade conversation continues (`digest` is a hash of
        the profile and the client's key, never the key itself); expires after retention."""
        if not _DIGEST_RE.match(digest):
            raise ValueError(f"not a conversation digest: {digest!r}")
        return self._tag() + f":conv:{digest}"

    def schedules(self) -> str:
        """HASH schedule id → JSON recurring input
        `{"v":1,"worker_id","text","cron","created_s"}`."""
        return self._tag() + ":schedules"

    def schedule_marks(self) -> str:
        """HASH schedule id → the newest slot (unix seconds) that schedule has fired."""
        return self._tag() + ":schedmarks"

    # -- webhooks (runtime_worker/webhooks.py), one slot: the runtime's tag ------------------------

    def hooks(self) -> str:
        """HASH delivery id → JSON pending webhook delivery
        `{"v":1,"delivery_id","worker_id","run_id","input_id","created_at","attempts"}`."""
        return self._tag() + ":hooks"

    def hooks_due(self) -> str:
        """ZSET delivery id → when it may be tried next (ms); a claim pushes it one lease on."""
        return self._tag() + ":hooks:due"

    def hooks_stats(self) -> str:
        """HASH outcome (`delivered`, `retried`, `failed`) → attempts that ended so."""
        return self._tag() + ":hooks:stats"


_IDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
"""Ids placed after a tag (input ids may hold `:`), never braces."""


SLOTS = 16384


def key_slot(key: str) -> int:
    """The Redis Cluster slot of `key` (CRC16 of its hash tag, as the server computes it)."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return binascii.crc_hqx(key.encode(), 0) % SLOTS


_TAG_BASE = b"@@@@"  # a slot tag: four of "@A…O", one nibble each (0x40 | nibble)


@functools.cache
def _tag_basis() -> dict[int, tuple[int, int]]:
    """CRC16 (init 0) is linear over GF(2) for messages of one length, so the nibbles that give
    a tag a wanted CRC solve a 16 x 16 linear system: its reduced rows by leading bit, each
    with the nibble bits it combines."""
    basis: dict[int, tuple[int, int]] = {}
    for bit in range(16):
        unit = bytearray(4)
        unit[bit // 4] = 1 << (bit % 4)
        value, combo = binascii.crc_hqx(bytes(unit), 0), 1 << bit
        while value:
            lead = value.bit_length() - 1
            if lead not in basis:
                basis[lead] = (value, combo)
                break
            value, combo = value ^ basis[lead][0], combo ^ basis[lead][1]
    return basis


@functools.cache
def slot_tag(slot: int) -> str:
    """A four-letter hash tag whose slot is `slot`: names a channel in one slot whatever Worker,
    member or namespace it serves. Solved, not searched (see `_tag_basis`)."""
    if not 0 <= slot < SLOTS:
        raise ValueError(f"not a cluster slot: {slot}")
    basis = _tag_basis()
    for high in range(4):  # the CRC's top two bits are free (slot = CRC mod 16384)
        target, combo = (high << 14 | slot) ^ binascii.crc_hqx(_TAG_BASE, 0), 0
        while target:
            lead = target.bit_length() - 1
            if lead not in basis:
                break  # outside the span: another top
            target, combo = target ^ basis[lead][0], combo ^ basis[lead][1]
        else:
            return bytes(_TAG_BASE[i] | (combo >> 4 * i) & 15 for i in range(4)).decode()
    raise AssertionError(f"no tag for slot {slot}")  # pragma: no cover - tests cover all
