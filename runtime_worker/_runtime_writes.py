"""`RuntimeWrites`: everything `Runtime` changes: Workers created and stopped, inputs sent,
runs cancelled.

Apart from the reads because each write checks its input and admission before one store step,
and that order (validate, admit, then write) is easiest to keep when the writes sit together.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from runtime_worker import conversations, scope
from runtime_worker._runtime_base import DEFAULT_PROFILE
from runtime_worker._runtime_reads import RuntimeReads
from runtime_worker.store.base import WorkerRecord
from runtime_worker.webhook_urls import check_webhook_url
from shared import tracing
from shared.errors import (
    InvalidInput,
    PayloadTooLarge,
    RuntimeUnavailable,
    ScopeConflict,
    WorkerNotFound,
    YoiError,
)
from shared.ids import is_worker_id, new_id
from shared.models import (
    MAX_CREATE_BATCH,
    CancelResult,
    CreateWorker,
    InputAccepted,
    SendInput,
    WorkerDetail,
)
from shared.timeutil import now_s
from shared.webhooks import UpdateWorker

MAX_DELEGATION_DEPTH = 64  # parents followed to find a batch item's delegation group


@contextlib.contextmanager
def _item(index: int) -> Iterator[None]:
    """A refusal of one item of a batch, its message naming the item as a validation error
    names its field: `workers.3: …`."""
    try:
        yield
    except YoiError as exc:
        if type(exc).__init__ is not YoiError.__init__ or isinstance(exc, RuntimeUnavailable):
            raise  # not about the item (Redis away), or an error with details of its own
        named = type(exc)(f"workers.{index}: {exc.message}", retryable=exc.retryable)
        named.retry_after_s = exc.retry_after_s
        raise named from None


def _check_batch_scopes(requests: Sequence[CreateWorker], groups: Sequence[str]) -> None:
    """Items whose write scopes overlap outside one delegation group refuse the batch, as the
    second of them created alone would be refused while the first is live."""
    scoped = [(i, r.scope, groups[i]) for i, r in enumerate(requests) if r.scope]
    for later, (index, mine, group) in enumerate(scoped):
        for other, theirs, other_group in scoped[:later]:
            if group != other_group and scope.conflicts(mine, theirs):
                raise ScopeConflict(
                    f"workers.{index}: the requested write scope overlaps the one of "
                    f"workers.{other}"
                )


class RuntimeWrites(RuntimeReads):
    """The runtime's Workers and inputs, changed."""

    async def create_worker(
        self, request: CreateWorker, *, worker_id: str | None = None
    ) -> WorkerDetail:
        """`worker_id`: an id the caller generated (and bound, see `conversation_worker`)."""
        profile = self.profiles.get(request.profile or DEFAULT_PROFILE)
        if request.webhook_url is not None:
            check_webhook_url(request.webhook_url, self.settings)
        if self.admission is not None:
            await self.admission.admit_worker()
        if request.delegated_from is not None:
            await self._record(request.delegated_from)
        worker_id = worker_id or new_id()
        await self.store.claim_scope(worker_id, request.scope, request.delegated_from)
        record = WorkerRecord(
            worker_id=worker_id,
            display_name=request.display_name,
            profile=profile.name,
            created_at=now_s(),
            scope=list(request.scope),
            delegated_from=request.delegated_from,
            transcript_maxlen=profile.transcript_maxlen,
            webhook_url=request.webhook_url,
        )
        try:
            # A fleet store hints its members in the same step: one takes the Worker at once.
            created = await self.store.create(record)
        except RuntimeUnavailable:
            # Redis is away and the create may have landed: the claim stays (a claim whose
            # Worker never appears is reclaimed once stale), and the caller gets its 503 now.
            raise
        except BaseException:
            await self.store.release_scope(worker_id)
            raise
        if self.host is not None:
            await self.host.adopt(worker_id)
            return await self.get_worker(worker_id)
        # The detail of what was just written: no read back (a member may be taking it now).
        return await self._detail(created.record, created.cursor)

    async def create_workers(self, requests: Sequence[CreateWorker]) -> list[WorkerDetail]:
        """Many Workers in one step (`POST …/workers:batch`), their details in order. The whole
        batch is judged before anything is written: each item as `create_worker` judges it
        (the first refusal names its index, `workers.3: …`), scopes overlapping another item's
        outside its delegation group (`scope_conflict`), then admission for all of them at
        once. The scopes are claimed item by item (a live Worker's overlap refuses the batch
        and the claims made so far are released), then the store writes every Worker at once
        (`Store.create_workers`). A refusal creates nothing; Redis lost mid-write (503) may
        leave some created, as a single create's 503 may."""
        if not requests:
            return []
        if len(requests) > MAX_CREATE_BATCH:
            raise InvalidInput(f"workers: at most {MAX_CREATE_BATCH} per batch")
        profiles = []
        for index, request in enumerate(requests):
            with _item(index):
                profiles.append(self.profiles.get(request.profile or DEFAULT_PROFILE))
                if request.webhook_url is not None:
                    check_webhook_url(request.webhook_url, self.settings)
        worker_ids = [new_id() for _ in requests]
        groups: list[str] = []
        for index, (worker_id, request) in enumerate(zip(worker_ids, requests, strict=True)):
            with _item(index):
                groups.append(await self._claim_group(worker_id, request.delegated_from))
        _check_batch_scopes(requests, groups)
        if self.admission is not None:
            await self.admission.admit_worker(len(requests))
        claimed = await self._claim_batch(worker_ids, requests)
        records = [
            WorkerRecord(
                worker_id=worker_id,
                display_name=request.display_name,
                profile=profile.name,
                created_at=now_s(),  # apart, so a listing keeps the batch's order
                scope=list(request.scope),
                delegated_from=request.delegated_from,
                transcript_maxlen=profile.transcript_maxlen,
                webhook_url=request.webhook_url,
            )
            for worker_id, request, profile in zip(worker_ids, requests, profiles, strict=True)
        ]
        try:
            created = await self.store.create_workers(records)
        except RuntimeUnavailable:
            raise  # some may have landed: their claims stay (see `create_worker`)
        except BaseException:
            await self._release_claims(claimed)
            raise
        if self.host is not None:
            for worker_id in worker_ids:
                await self.host.adopt(worker_id)
            return [await self.get_worker(worker_id) for worker_id in worker_ids]
        return [await self._detail(item.record, item.cursor) for item in created]

    async def _claim_group(self, worker_id: str, delegated_from: str | None) -> str:
        """The delegation group a new Worker's claim joins: its own id, or the root of its
        parent's delegation chain (a parent that is not there: `WorkerNotFound`)."""
        if delegated_from is None:
            return worker_id
        record = await self._record(delegated_from)
        for _ in range(MAX_DELEGATION_DEPTH):
            if record.delegated_from is None:
                break
            try:
                record = await self.store.get_worker(record.delegated_from)
            except WorkerNotFound:  # an ancestor gone: its child heads the group it claimed
                break
        return record.worker_id

    async def _claim_batch(
        self, worker_ids: Sequence[str], requests: Sequence[CreateWorker]
    ) -> list[str]:
        """Each item's claim in order (an earlier item's claim counts as live for a later
        one); a refusal releases those made so far. Answers the Workers that claimed."""
        claimed: list[str] = []
        try:
            for index, (worker_id, request) in enumerate(zip(worker_ids, requests, strict=True)):
                if request.scope or request.delegated_from is not None:
                    with _item(index):
                        await self.store.claim_scope(
                            worker_id, request.scope, request.delegated_from
                        )
                    claimed.append(worker_id)
        except BaseException:
            await self._release_claims(claimed)
            raise
        return claimed

    async def _release_claims(self, worker_ids: Sequence[str]) -> None:
        """Give back a refused batch's claims; one Redis cannot take back now stays until it
        is reclaimed as stale (a claim whose Worker never appears)."""
        for worker_id in worker_ids:
            try:
                await self.store.release_scope(worker_id)
            except RuntimeUnavailable:
                return

    async def ensure_worker(self, request: CreateWorker) -> WorkerDetail:
        """The live Worker with this display name, created on first use."""
        found = await self.find_worker(request.display_name, profile=request.profile)
        if found is not None:
            return await self.get_worker(found.worker_id)
        return await self.create_worker(request)

    async def conversation_worker(self, profile: str, key: str) -> WorkerDetail:
        """The live Worker continuing conversation `key` with `profile`, created on first use
        (once, even for concurrent first calls, across gateways: the binding is in the store)."""
        return await conversations.conversation_worker(self, profile, key)

    async def update_worker(self, worker_id: str, request: UpdateWorker) -> WorkerDetail:
        """Change what the request names (its webhook); a refused URL changes nothing."""
        await self._record(worker_id)
        if "webhook_url" in request.model_fields_set:
            if request.webhook_url is not None:
                check_webhook_url(request.webhook_url, self.settings)
            await self.store.set_webhook(worker_id, request.webhook_url)
        return await self.get_worker(worker_id)

    async def stop_worker(self, worker_id: str) -> WorkerDetail:
        await self._record(worker_id)
        record = await self.store.request_stop(worker_id)  # it wakes the host that drains
        await self.store.release_scope(worker_id)
        return await self._detail(record)

    async def send_input(self, worker_id: str, request: SendInput) -> InputAccepted:
        if not request.text.strip():
            raise InvalidInput("the text is empty")
        if len(request.text) > self.settings.max_input_chars:
            raise PayloadTooLarge(
                f"the text is longer than {self.settings.max_input_chars} characters"
            )
        if not is_worker_id(worker_id):
            raise InvalidInput("malformed worker id")
        if self.admission is not None:
            await self.admission.admit_input(worker_id)
        # One store step: it checks the Worker, resolves its profile's default strategy and
        # wakes the Worker's host.
        submission = await self.store.submit_input(
            worker_id,
            request.text,
            request.input_id or new_id(),
            request.strategy,
            now_s(),
            default_strategies=self.profiles.default_strategies(),
            max_queued=self.settings.max_queued_inputs,
            trace=tracing.carrier(),
        )
        return InputAccepted(input_id=submission.input_id, cursor=submission.cursor)

    async def cancel(self, worker_id: str) -> CancelResult:
        await self._record(worker_id)
        outcome = await self.store.cancel(worker_id)
        return CancelResult(worker_id=worker_id, state=outcome.state, cancelled=outcome.cancelled)
