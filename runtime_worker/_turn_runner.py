"""`TurnRunner`: one taken input run to its final events.

Apart from `Host` because a run is its own concern: it decides the outcome (cancelled, dead
letter, host lost, timed out, failed, finished), streams the provider's answer and bills it,
while the host only decides which Worker runs when and keeps the leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator

from runtime_worker._flusher import Flusher
from runtime_worker._hosted import Hosted
from runtime_worker.profiles import Profile, render_prompt
from runtime_worker.providers.base import ChatMessage, Provider, TurnRequest, UsageChunk
from runtime_worker.store.base import RunOutcome, Store, TakenAhead, TakenRun
from runtime_worker.webhooks import Deliverer
from shared import tracing
from shared.errors import LeaseLost, RuntimeUnavailable, YoiError
from shared.models import RunResult, TranscriptRole
from shared.settings import Settings
from shared.timeutil import now_s

log = logging.getLogger("yoi.host")

ProviderFactory = Callable[[Profile], Provider]


class TurnRunner:
    """Runs taken inputs for one host, with one provider per provider name and model."""

    def __init__(
        self,
        store: Store,
        *,
        runtime_id: str,
        settings: Settings,
        provider_factory: ProviderFactory | None = None,
    ) -> None:
        self.store = store
        self.runtime_id = runtime_id
        self.settings = settings
        self._provider_factory = provider_factory or self._default_provider
        self._providers: dict[str, Provider] = {}
        self.webhooks: Deliverer | None = None  # the host's, when this runtime posts webhooks

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()

    async def run(self, worker_id: str, hosted: Hosted, profile: Profile, taken: TakenRun) -> bool:
        """Run one taken input to its final events, in the input's trace; answers whether more
        may be waiting."""
        with _traced(worker_id, taken):
            return await self._run(worker_id, hosted, profile, taken, None)

    async def run_ahead(
        self, worker_id: str, hosted: Hosted, profile: Profile, ahead: TakenAhead
    ) -> bool:
        """The run `ahead.guess` started now, beside its take (`Store.take_ahead`): kept when
        the take confirms it, else dropped (the store let none of its writes in) and whatever
        the take answered run as `run` runs it. Raises what the take raises (`RunAlone`,
        `LeaseLost`, `RuntimeUnavailable`) once the run started ahead has ended."""
        with _traced(worker_id, ahead.guess):
            started = self._start(worker_id, hosted, profile, ahead.guess, ahead=True)
            try:
                taken = await ahead.taken
            except BaseException:
                ahead.taken.cancel()  # when this drain itself is cancelled meanwhile
                await asyncio.wait([ahead.taken])
                await _ended(started[0])
                hosted.turn = None
                raise
            if taken is not None and taken.claim.ahead:
                return await self._run(worker_id, hosted, profile, taken, started)
            await _ended(started[0])
            hosted.turn = None
        return taken is not None and await self.run(worker_id, hosted, profile, taken)

    async def _run(
        self,
        worker_id: str,
        hosted: Hosted,
        profile: Profile,
        taken: TakenRun,
        started: _Started | None,
    ) -> bool:
        """Run one taken input to its final events (`started`: its turn, started ahead of its
        take and confirmed by it); answers whether more may be waiting."""
        item, claim = taken.item, taken.claim
        hosted.seq = item.seq  # a hint of this input from now on is old news (`Host.wake`)
        if claim.cancelled:  # never so for a confirmed start: its first attempt, live
            outcome = RunOutcome(RunResult.CANCELLED, "", reason="cancelled_before_start")
        elif claim.crashes >= self.settings.max_deliveries:
            outcome = RunOutcome(
                RunResult.FAILED,
                "",
                reason="dead_letter",
                error_code="dead_letter",
                error_message=f"the input's run killed its host {claim.crashes} times: set aside",
            )
        elif claim.host_lost and profile.on_host_lost == "fail":
            outcome = RunOutcome(
                RunResult.FAILED,
                "",
                reason="host_lost",
                error_code="host_lost",
                error_message="the runtime process hosting this run was lost",
                error_retryable=True,  # the input itself did nothing wrong
            )
        else:
            outcome = await self._turn(worker_id, hosted, profile, taken, started)
        if self.webhooks is not None:  # its delivery is in the store before its finish
            await self.webhooks.before_finish(worker_id, item, claim.run_id)
        more = await self.store.finish_run(
            worker_id, hosted.epoch, item, outcome, now_s(), run_id=claim.run_id
        )
        if self.webhooks is not None:
            self.webhooks.after_finish()
        return more

    def _start(
        self, worker_id: str, hosted: Hosted, profile: Profile, taken: TakenRun, *, ahead: bool
    ) -> _Started:
        """The turn's task, streaming already, and its flusher; registered as the running turn
        (a cancel ends it). Its owner awaits it or `_ended` it."""
        item = taken.item
        hosted.seq, hosted.cancel_requested, hosted.text = item.seq, False, []
        flusher = Flusher(
            self.store,
            worker_id,
            hosted,
            item,
            taken.claim.run_id,
            interval_s=self.settings.flush_interval_ms / 1000,
            ahead=ahead,
        )
        turn = asyncio.create_task(
            self._stream(worker_id, hosted, profile, taken, flusher), name="yoi-turn"
        )
        hosted.turn = turn
        return turn, flusher

    async def _turn(
        self,
        worker_id: str,
        hosted: Hosted,
        profile: Profile,
        taken: TakenRun,
        started: _Started | None = None,
    ) -> RunOutcome:
        item = taken.item
        turn, flusher = started or self._start(worker_id, hosted, profile, taken, ahead=False)
        # From here on no way out of this method leaves the turn running: a turn outliving its
        # drain would stream on beside the next attempt of the same input.
        try:
            # The take saw every cancel made before it; a hint since (handled while no turn was
            # registered) may be a cancel that raced the start.
            if hosted.hinted and await self._cancelled(worker_id, item.seq):
                hosted.cancel_requested = True
                turn.cancel()
            return await asyncio.shield(turn)
        except asyncio.CancelledError:
            if hosted.cancel_requested and turn.cancelled():
                spent = flusher.counted()
                return RunOutcome(
                    RunResult.CANCELLED,
                    "".join(hosted.text),
                    input_tokens=spent.input_tokens,
                    output_tokens=spent.output_tokens,
                    reason="cancelled",
                )
            turn.cancel()  # the host itself is stopping: leave the input for the next host
            await asyncio.wait([turn])  # the drain ends after its turn, not beside it
            raise
        except LeaseLost:
            # A run started ahead whose first write reached Redis before its take (it went on
            # a connection of its own) was refused though the take confirmed it: nothing of it
            # is written, so it starts again as a plain run. Any other refusal is the lease's.
            if not (flusher.ahead and flusher.written == 0):
                raise
        except BaseException:
            turn.cancel()
            await asyncio.wait([turn])
            raise
        finally:
            hosted.turn = None
        return await self._turn(worker_id, hosted, profile, taken)

    async def _cancelled(self, worker_id: str, seq: int) -> bool:
        """Whether the input was cancelled since its take; False when the store cannot say now
        (a poke or the host's sweep reads it again while the turn runs)."""
        try:
            return await self.store.is_cancelled(worker_id, seq)
        except RuntimeUnavailable:
            return False

    async def _stream(
        self, worker_id: str, hosted: Hosted, profile: Profile, taken: TakenRun, flusher: Flusher
    ) -> RunOutcome:
        request = TurnRequest(
            messages=self._messages(worker_id, hosted, profile, taken),
            model=profile.model,
            max_output_tokens=profile.max_output_tokens,
            temperature=profile.temperature,
        )
        usage = UsageChunk(0, 0)
        try:
            provider = self._provider(profile)
            called = {"yoi.provider": provider.name, "yoi.model": profile.model}
            async with asyncio.timeout(profile.turn_timeout_s or self.settings.turn_timeout_s):
                with tracing.span("yoi.provider_call", attributes=called):
                    usage = await flusher.pump(provider, request)
            tail = flusher.tail()  # written with the final events, in the same step
        except TimeoutError:
            return RunOutcome(
                RunResult.TIMED_OUT,
                "".join(hosted.text),
                *_tokens(flusher.counted()),
                reason="turn_timeout",
                error_code="timeout",
                error_message="the answer took too long",
                error_retryable=True,
            )
        except (LeaseLost, RuntimeUnavailable):
            raise
        except YoiError as exc:  # the provider's typed failure, or a misconfigured profile
            return RunOutcome(
                RunResult.FAILED,
                "".join(hosted.text),
                *_tokens(flusher.counted()),
                reason=exc.code,
                error_code=exc.code,
                error_message=exc.message,
                error_retryable=exc.retryable,
            )
        except Exception as exc:  # a provider bug must fail the run, not the host
            log.error("run of worker %s failed: %s", worker_id, type(exc).__name__)
            return RunOutcome(
                RunResult.FAILED,
                "".join(hosted.text),
                *_tokens(flusher.counted()),
                reason="internal_error",
                error_code="provider_error",
                error_message="the provider failed",
            )
        return RunOutcome(
            RunResult.FINISHED,
            "".join(hosted.text),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            deltas=tail,
        )

    def _messages(
        self, worker_id: str, hosted: Hosted, profile: Profile, taken: TakenRun
    ) -> list[ChatMessage]:
        """System prompt, then the bounded history; the transcript already ends with this input."""
        item = taken.item
        system = render_prompt(
            profile,
            runtime_id=self.runtime_id,
            worker_id=worker_id,
            display_name=hosted.display_name,
            workspace=self.settings.workspace,
        )
        messages = [ChatMessage("system", system)]
        for role, text in taken.history:
            if role == TranscriptRole.USER:
                messages.append(ChatMessage("user", text))
            elif role == TranscriptRole.ASSISTANT and text:
                messages.append(ChatMessage("assistant", text))
        if len(messages) == 1 or messages[-1].content != item.text:
            messages.append(ChatMessage("user", item.text))
        return messages

    def _provider(self, profile: Profile) -> Provider:
        key = f"{profile.provider or self.settings.provider}:{profile.model}"
        provider = self._providers.get(key)
        if provider is None:
            provider = self._providers[key] = self._provider_factory(profile)
        return provider

    def _default_provider(self, profile: Profile) -> Provider:
        from runtime_worker.providers.factory import make_provider

        name = profile.provider or self.settings.provider
        return make_provider(name, self.settings, model=profile.model or None)


@contextlib.contextmanager
def _traced(worker_id: str, taken: TakenRun) -> Iterator[None]:
    """The run's spans (shared.tracing): its wait in the queue, from the input's acceptance to
    this start, then the run around the block."""
    item, claim = taken.item, taken.claim
    ids: tracing.Attributes = {
        "yoi.worker_id": worker_id,
        "yoi.input_id": item.input_id,
        "yoi.run_id": claim.run_id,
        "yoi.attempt": claim.attempt,
    }
    with tracing.span("yoi.queue_wait", parent=item.trace, start_s=item.ts, attributes=ids):
        pass
    with tracing.span("yoi.run", parent=item.trace, attributes=ids):
        yield


_Started = tuple["asyncio.Task[RunOutcome]", Flusher]
"""A turn started (its task and flusher) before `_turn` runs it: ahead of its take."""


async def _ended(turn: asyncio.Task[RunOutcome]) -> None:
    """A turn cancelled and waited for, whatever it ended with (nothing of a dropped run
    started ahead was written: its store refused it)."""
    turn.cancel()
    await asyncio.wait([turn])
    if not turn.cancelled():
        turn.exception()  # retrieved: a refused write is this drop's, not news


def _tokens(usage: UsageChunk) -> tuple[int, int]:
    """`RunOutcome`'s positional token fields, in order."""
    return usage.input_tokens, usage.output_tokens
