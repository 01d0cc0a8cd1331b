"""`RuntimeWrites`: everything `Runtime` changes: Workers created and stopped, inputs sent,
runs cancelled.

Apart from the reads because each write checks its input and admission before one store step,
and that order (validate, admit, then write) is easiest to keep when the writes sit together.
"""

from __future__ import annotations

from runtime_worker import conversations
from runtime_worker._runtime_base import DEFAULT_PROFILE
from runtime_worker._runtime_reads import RuntimeReads
from runtime_worker.store.base import WorkerRecord
from runtime_worker.webhook_urls import check_webhook_url
from shared import tracing
from shared.errors import InvalidInput, PayloadTooLarge, RuntimeUnavailable
from shared.ids import is_worker_id, new_id
from shared.models import CancelResult, CreateWorker, InputAccepted, SendInput, WorkerDetail
from shared.timeutil import now_s
from shared.webhooks import UpdateWorker


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
