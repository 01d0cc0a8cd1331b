"""`/v1`: the OpenAI-compatible facade (`gateway.openai`), behind the same bearer token as `/api`.

Errors here are in OpenAI's shape (`gateway.openai.errors`), so OpenAI's clients raise their
own typed exceptions.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Request, Response
from sse_starlette import EventSourceResponse
from starlette.responses import JSONResponse

from gateway.deps import GatewayDep, RegistryDep
from gateway.errors import ClientGone
from gateway.openai import completions, models
from gateway.openai import errors as openai_errors
from gateway.openai.completions import Run
from gateway.openai.stream import stream_response
from gateway.routes._shared import send_input
from shared.errors import YoiError
from shared.models import SendInput, Strategy
from shared.openai import ChatCompletion, ChatCompletionRequest, ModelCard, ModelList, OpenAIError

CONVERSATION_HEADER = "X-Yoi-Conversation"
WORKER_HEADER = "X-Yoi-Worker"
"""On every completion: `<runtime_id>/<worker_id>`, a `model` that continues that Worker."""

_DESCRIPTIONS: dict[int | str, str] = {
    400: "`invalid_request_error`: the body is malformed",
    401: "`invalid_api_key`: a valid bearer token is required",
    404: "`model_not_found`: `model` names no profile, runtime or Worker",
    409: "`worker_busy` (retry after `Retry-After`) or `worker_stopped`",
    413: "`payload_too_large`",
    429: "`rate_limit_exceeded`: past the request rate limit (retry after `Retry-After`)",
    # Declared so that FastAPI does not add its own 422: `/v1` answers 400 instead.
    "4XX": "any other client error, in OpenAI's shape",
    500: "`internal_error`",
    502: "`provider_error`: the run failed",
    503: "`runtime_unavailable`, or `capacity_exhausted` (retry after `Retry-After`)",
    504: "`timeout`: the run did not finish in time (it is cancelled)",
}


def _errors(*statuses: int | str) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": OpenAIError, "description": _DESCRIPTIONS[s]} for s in statuses}


_COMPLETION: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/json": {}, "text/event-stream": {}},
        "description": "A `chat.completion`, or with `stream: true` its chunks as SSE `data:` "
        "lines ending with `data: [DONE]`.",
    }
}
router = APIRouter(prefix="/v1", tags=["openai"], responses=_errors(500, 401, "4XX"))


@router.get("/models", responses=_errors(429, 503), operation_id="list_models")
async def list_models(gateway: GatewayDep, registry: RegistryDep) -> ModelList:
    """The profiles (a Worker per conversation key), then every live Worker as
    `<runtime_id>/<worker_id>`."""
    return await models.list_models(registry, gateway.settings)


@router.get("/models/{model:path}", responses=_errors(404, 429, 503), operation_id="get_model")
async def get_model(gateway: GatewayDep, registry: RegistryDep, model: str) -> ModelCard:
    return await models.model_card(registry, gateway.settings, model)


async def _unless_disconnected(request: Request, run: Run, model: str) -> ChatCompletion:
    """`completions.complete`, cancelled (and so the run cancelled) when the client leaves."""
    answer: list[ChatCompletion] = []
    failure: list[Exception] = []
    async with anyio.create_task_group() as group:

        async def work() -> None:
            try:
                answer.append(await completions.complete(run, model))
            except Exception as exc:  # raised below as itself, not inside an ExceptionGroup
                failure.append(exc)
            group.cancel_scope.cancel()

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            group.cancel_scope.cancel()

        group.start_soon(work)
        group.start_soon(watch)
    if failure:
        raise failure[0]
    if not answer:
        raise ClientGone
    return answer[0]


@router.post(
    "/chat/completions",
    response_model=None,
    operation_id="create_chat_completion",
    responses={**_COMPLETION, **_errors(400, 404, 409, 413, 429, 502, 503, 504)},
)
async def chat_completions(
    request: Request,
    response: Response,
    gateway: GatewayDep,
    registry: RegistryDep,
    body: ChatCompletionRequest,
    conversation: Annotated[str | None, Header(alias=CONVERSATION_HEADER, max_length=256)] = None,
) -> ChatCompletion | EventSourceResponse | JSONResponse:
    """The last user message goes to the Worker `model` names; the answer comes back whole or,
    with `stream: true`, as chunks. See the README's "OpenAI-compatible API" for the rules."""
    text = completions.last_user_text(body)
    key = conversation or body.user
    target = await models.resolve(registry, gateway.settings, body.model, key)
    try:
        accepted = await send_input(
            gateway,
            target.runtime,
            target.worker_id,
            SendInput(text=text, strategy=Strategy.REJECT),
        )
    except BaseException:
        if target.single_use:
            await target.runtime.stop_worker(target.worker_id)
        raise
    run = Run(target, accepted, timeout_s=gateway.settings.chat_timeout_s)
    worker = {WORKER_HEADER: f"{target.runtime.runtime_id}/{target.worker_id}"}
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        heartbeat_s = gateway.settings.sse_heartbeat_s
        return stream_response(run, body.model, include_usage, heartbeat_s, headers=worker)
    response.headers.update(worker)
    try:
        return await _unless_disconnected(request, run, body.model)
    except YoiError as exc:  # the run's failure: still say which Worker has its transcript
        failed = openai_errors.from_yoi(exc)
        failed.headers.update(worker)
        return failed
