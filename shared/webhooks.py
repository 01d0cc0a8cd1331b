"""Wire models of webhooks: what a Worker's detail shows of its webhook and last delivery."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_WEBHOOK_URL_CHARS = 2048
WebhookUrl = Annotated[str, Field(max_length=MAX_WEBHOOK_URL_CHARS, pattern=r"^https?://\S+$")]
"""An http(s) URL; which hosts a runtime posts to is its allow-list's say (422 otherwise)."""


class DeliveryOutcome(StrEnum):
    """How one delivery attempt ended: `retried` means another attempt is scheduled."""

    DELIVERED = "delivered"
    RETRIED = "retried"
    FAILED = "failed"


class WebhookDelivery(BaseModel):
    """The newest delivery attempt of a Worker's webhook."""

    run_id: str
    outcome: DeliveryOutcome
    status_code: int | None = Field(default=None, description="The receiver's HTTP status.")
    error: str | None = Field(
        default=None,
        description="Why there was no 2xx: `http_status`, `timeout`, `connect`, `refused_url`, "
        "`run_gone` or `expired`.",
    )
    attempts: int = Field(ge=1)
    at: float = Field(description="When the attempt ended (unix seconds).")


class WebhookInfo(BaseModel):
    """A Worker's webhook: where runs are posted (scheme, host, port and path only: a query or
    userinfo never leaves the store) and how the newest delivery went."""

    url: str | None = None
    source: Literal["worker", "runtime"] | None = None
    last_delivery: WebhookDelivery | None = None


class UpdateWorker(BaseModel):
    """The body of `PATCH …/workers/{worker_id}`: fields given are changed, others kept."""

    model_config = ConfigDict(extra="forbid")
    webhook_url: WebhookUrl | None = Field(
        default=None,
        description="An http(s) URL on the runtime's allow-list; null removes the Worker's own "
        "webhook (the runtime's default, if any, applies again).",
    )
