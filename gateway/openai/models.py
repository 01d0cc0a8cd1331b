"""What a request's `model` names, and the list `GET /v1/models` shows.

- `<runtime_id>/<worker_id>`: that Worker (its conversation goes on).
- `<display_name>@<runtime_id>`: the oldest live Worker of that name on that runtime (the way
  people write Workers, e.g. `companion@backend-internal`).
- a profile name: a Worker of that profile on the default runtime (`YOI_CHAT_RUNTIME`). With
  a conversation key (header `X-Yoi-Conversation`, else the body's `user`) the key's Worker,
  created on first use and reused after; without one, a single-use Worker for this request.
Anything else is 404 `model_not_found` (the message does not echo the name).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from gateway.registry import RuntimeRegistry
from runtime_worker.runtime import Runtime
from shared.errors import RuntimeUnavailable, WorkerNotFound
from shared.ids import is_worker_id
from shared.models import LIVE_STATES, CreateWorker, WorkerSummary
from shared.openai import ModelCard, ModelList
from shared.settings import Settings

SINGLE_USE_NAME = "chat-once"
PROFILES_OWNER = "yoi-fleet"
NOT_FOUND = (
    "no such model: name a profile (see GET /v1/models), <display_name>@<runtime_id> or "
    "<runtime_id>/<worker_id>"
)


@dataclass(frozen=True)
class Target:
    """The Worker a completion talks to; `single_use`: made for this request, stopped after."""

    runtime: Runtime
    worker_id: str
    single_use: bool = False


def _not_found() -> WorkerNotFound:
    return WorkerNotFound(NOT_FOUND)


async def _worker(registry: RuntimeRegistry, model: str) -> tuple[Runtime, WorkerSummary] | None:
    """The Worker a reference names, None when `model` is no Worker reference."""
    if "/" in model:
        runtime_id, _, worker_id = model.partition("/")
        runtime = registry.get(runtime_id)
        if not is_worker_id(worker_id):
            raise _not_found()
        return runtime, await runtime.get_worker(worker_id)
    if "@" in model:
        name, _, runtime_id = model.rpartition("@")
        runtime = registry.get(runtime_id)
        found = await runtime.find_worker(name)
        if found is None:
            raise _not_found()
        return runtime, found
    return None


async def resolve(
    registry: RuntimeRegistry, settings: Settings, model: str, conversation: str | None
) -> Target:
    """The Worker `model` (and the conversation key) address, created when a profile is named."""
    named = await _worker(registry, model)
    if named is not None:
        return Target(named[0], named[1].worker_id)
    runtime = registry.get(settings.chat_runtime)
    if model not in runtime.profiles.names():
        raise _not_found()
    if conversation:
        return Target(runtime, (await runtime.conversation_worker(model, conversation)).worker_id)
    created = await runtime.create_worker(CreateWorker(display_name=SINGLE_USE_NAME, profile=model))
    return Target(runtime, created.worker_id, single_use=True)


def _profile_card(name: str) -> ModelCard:
    return ModelCard(id=name, created=0, owned_by=PROFILES_OWNER)


def _worker_card(worker: WorkerSummary) -> ModelCard:
    return ModelCard(
        id=f"{worker.runtime_id}/{worker.worker_id}",
        created=int(worker.created_at),
        owned_by=worker.runtime_id,
    )


async def list_models(registry: RuntimeRegistry, settings: Settings) -> ModelList:
    """The profiles, then every live Worker of every runtime that answers."""

    async def live(runtime: Runtime) -> list[WorkerSummary]:
        try:
            workers = await runtime.list_workers()
        except RuntimeUnavailable:
            return []  # a fleet that is down has nothing addressable now
        return [worker for worker in workers if worker.state in LIVE_STATES]

    profiles = registry.get(settings.chat_runtime).profiles.names()
    cards = [_profile_card(name) for name in profiles]
    for workers in await asyncio.gather(*(live(runtime) for runtime in registry.all())):
        cards += [_worker_card(worker) for worker in workers]
    return ModelList(data=cards)


async def model_card(registry: RuntimeRegistry, settings: Settings, model: str) -> ModelCard:
    """`GET /v1/models/{model}`: what `model` names, without creating anything."""
    named = await _worker(registry, model)
    if named is not None:
        return _worker_card(named[1])
    if model not in registry.get(settings.chat_runtime).profiles.names():
        raise _not_found()
    return _profile_card(model)


__all__ = ["Target", "list_models", "model_card", "resolve"]
