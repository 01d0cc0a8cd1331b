"""`FleetStore`: a `Store` that a fleet of member processes shares. Beyond the roles every
store has, members need membership (heartbeats, who is alive), placement (who hosts what, hints
that a Worker needs a host, batched acquisitions).
`RedisStore` is the one implementation; members and the scheduler use only this boundary."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

from runtime_worker.store._redis_batch import Acquisition, PlacementRead
from runtime_worker.store._redis_members import MemberView
from runtime_worker.store.base import Store


class FleetStore(Store):
    runtime_id: str
    cluster: bool
    """Whether the fleet runs on a Redis Cluster (arq then needs a Redis of its own)."""

    # -- membership ------------------------------------------------------------------------------

    @abstractmethod
    async def heartbeat(self, member_id: str, capacity: int, hosted: int) -> None:
        """A member says it is alive, with its capacity and how many Workers it hosts."""

    @abstractmethod
    async def forget_member(self, member_id: str) -> None:
        """A member leaving gracefully."""

    @abstractmethod
    async def member_draining(self, member_id: str) -> bool:
        """Whether an operator told this member to drain (`drain_member`)."""

    @abstractmethod
    async def member_views(self) -> list[MemberView]:
        """`members`, each with how long it has been silent (placement times deaths by it)."""

    @property
    @abstractmethod
    def member_alive_ms(self) -> int:
        """How long a member counts as alive after its last heartbeat."""

    # -- placement -------------------------------------------------------------------------------

    @abstractmethod
    async def placements(self) -> PlacementRead:
        """What placement needs of every Worker (state, host, epoch, queue depth, run); not
        `complete` while a cluster node does not answer (its Workers are left out)."""

    @abstractmethod
    async def unhosted(self) -> PlacementRead:
        """`placements` of the Workers that may need a host (created, handed back, marked):
        what a steady-state sweep reads instead of every Worker. The member that acquired
        one removes it (`settle_unhosted`), once it hosts it."""

    @abstractmethod
    async def settle_unhosted(self, worker_ids: Sequence[str]) -> None:
        """These Workers have a host (the caller): no more candidates for `unhosted`."""

    @abstractmethod
    async def mark_unhosted(self, worker_ids: Sequence[str]) -> None:
        """These Workers may need a host: candidates for `unhosted` (a full sweep's repair)."""

    @abstractmethod
    async def acquire_many(
        self, worker_ids: Sequence[str], member_id: str, ttl_ms: int
    ) -> dict[str, Acquisition]:
        """`acquire` for many Workers in one step; a Worker that does not exist is left out."""

    @abstractmethod
    async def announce_placement(self, worker_ids: Sequence[str]) -> None:
        """Hint every member that these Workers need a host now (only a hint)."""

    @abstractmethod
    async def placement_cursor(self) -> str:
        """Where to read placement hints from for "from now on"."""

    @abstractmethod
    async def wait_placement(self, last_id: str, timeout_ms: int) -> tuple[list[str], str]:
        """Placement hints after `last_id`, waiting up to `timeout_ms`: Worker ids, new id."""
