"""Which webhook URLs a runtime may post to: http(s), no userinfo, a host on the allow-list.

No allow-list means no webhooks at all: a runtime never posts to an address nobody named (no
SSRF into the network it runs in by default)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import SplitResult, urlsplit

from shared.errors import InvalidInput
from shared.settings import Settings
from shared.webhooks import WebhookDelivery, WebhookInfo

_DEFAULT_PORTS = {"http": 80, "https": 443}


def webhooks_enabled(settings: Settings) -> bool:
    """Whether this runtime signs and posts webhooks at all."""
    return bool(settings.webhook_allowed_hosts) and settings.webhook_secret is not None


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a malformed port raises here
    except ValueError:
        raise InvalidInput("the webhook URL is not a URL") from None
    return parts


def _allowed(entry: str, host: str, port: int) -> bool:
    entry = entry.strip().lower()
    if entry.startswith("["):  # [v6] or [v6]:port
        name, _, rest = entry[1:].partition("]")
        return name == host and (not rest or rest == f":{port}")
    name, colon, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
    if not colon:
        return entry == host
    return name == host and entry_port == str(port)


def check_webhook_url(url: str, settings: Settings) -> str:
    """`url` when this runtime may post to it, else `InvalidInput` saying why (422)."""
    if not settings.webhook_allowed_hosts:
        raise InvalidInput(
            "webhooks are off on this runtime: YOI_WEBHOOK_ALLOWED_HOSTS names no host"
        )
    if settings.webhook_secret is None:
        raise InvalidInput("webhooks are off on this runtime: YOI_WEBHOOK_SECRET is not set")
    parts = _split(url)
    if parts.scheme not in _DEFAULT_PORTS:
        raise InvalidInput("a webhook URL must be http or https")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("a webhook URL may not carry a user or password")
    host = (parts.hostname or "").lower()
    if not host:
        raise InvalidInput("the webhook URL names no host")
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    if not any(_allowed(entry, host, port) for entry in settings.webhook_allowed_hosts):
        raise InvalidInput("the webhook URL's host is not on YOI_WEBHOOK_ALLOWED_HOSTS")
    return url


def shown_url(url: str) -> str:
    """What a response may show of a webhook URL: scheme, host, port and path (a query or a
    fragment may hold a token)."""
    parts = _split(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return f"{parts.scheme}://{netloc}{parts.path}"


def webhook_info(url: str | None, last: str | None, settings: Settings) -> WebhookInfo | None:
    """What a Worker's detail shows of its webhook (None when it has none and no last try)."""
    source: Literal["worker", "runtime"] | None = None
    if url is not None:
        source = "worker"
    elif settings.webhook_url is not None and webhooks_enabled(settings):
        url, source = settings.webhook_url, "runtime"
    delivered = WebhookDelivery.model_validate_json(last) if last is not None else None
    if url is None and delivered is None:
        return None
    return WebhookInfo(
        url=None if url is None else shown_url(url), source=source, last_delivery=delivered
    )
