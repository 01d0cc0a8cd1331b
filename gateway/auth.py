"""Who may call the gateway: a bearer token, and short-lived stream tickets for one Worker.

The token is required whenever the gateway listens beyond loopback (it refuses to start without
one) and on request (a token set on loopback protects the API too). Everything is protected
except an explicit allowlist (fail closed): liveness, readiness, the console page and its static
files, and the OpenAPI docs.

A browser's `EventSource` cannot send a header, and the long-lived token must never go into a
URL, so `POST .../stream-ticket` hands out a ticket: `<expiry>.<HMAC(runtime, worker, expiry)>`,
valid for one Worker's event stream for `stream_ticket_ttl_s`. No server state: the key derives
from the token, so every gateway replica sharing the token accepts every other one's tickets.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
import time
from collections.abc import Callable
from urllib.parse import parse_qs

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.openai import errors as openai_errors
from shared.errors import Unauthorized
from shared.settings import EMBEDDED_RUNTIME_ID, Settings

OPEN_PATHS = frozenset({"/", "/fleet", "/healthz", "/readyz", "/docs", "/openapi.json"})
OPEN_PREFIXES = ("/static/", "/docs/assets/")
_WORKER_STREAM = re.compile(r"^/api/runtimes/([^/]+)/workers/([^/]+)/events/stream$")
_COMPANION_STREAM = "/api/companion/events/stream"
_TICKET_CONTEXT = b"yoi-stream-ticket/v1"


class UnsafeConfig(ValueError):
    """The settings would expose the API without a token: the gateway refuses to start."""


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def api_token(settings: Settings) -> str | None:
    token = settings.api_token.get_secret_value() if settings.api_token is not None else ""
    return token or None


def check_bind(settings: Settings) -> None:
    """Fail closed: beyond loopback, no token means no gateway."""
    if api_token(settings) is None and not is_loopback(settings.host):
        raise UnsafeConfig(
            f"the gateway would listen on {settings.host}, beyond loopback, without an API token: "
            "set YOI_API_TOKEN (or listen on 127.0.0.1)"
        )


def token_matches(header: str | None, token: str) -> bool:
    """`Authorization: Bearer <token>`, compared in constant time."""
    if header is None:
        return False
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


class Tickets:
    """Issues and checks stream tickets; stateless apart from the signing key."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        token = api_token(settings)
        # Without a token the API is open anyway; a random key keeps tickets meaningful per process.
        secret = token.encode() if token is not None else secrets.token_bytes(32)
        self._key = hmac.new(secret, _TICKET_CONTEXT, hashlib.sha256).digest()
        self.ttl_s = settings.stream_ticket_ttl_s
        self._clock = clock

    def _sign(self, runtime_id: str, worker_id: str, expires_at: int) -> str:
        message = f"{runtime_id}|{worker_id}|{expires_at}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(self, runtime_id: str, worker_id: str) -> str:
        expires_at = int(self._clock()) + self.ttl_s
        return f"{expires_at}.{self._sign(runtime_id, worker_id, expires_at)}"

    def verify(self, ticket: str, runtime_id: str, worker_id: str) -> bool:
        expiry, _, signature = ticket.partition(".")
        if not expiry.isdigit() or len(expiry) > 12 or int(expiry) < self._clock():
            return False
        expected = self._sign(runtime_id, worker_id, int(expiry))
        return hmac.compare_digest(signature.encode(), expected.encode())


def _ticket(scope: Scope) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("ticket")
    return values[-1] if values else None


class AuthMiddleware:
    """Pure ASGI, outside the router, so a caller without the token learns nothing but 401."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        tickets: Tickets,
        companion_id: Callable[[], str | None],
    ) -> None:
        self.app = app
        self.token = token
        self.tickets = tickets
        self.companion_id = companion_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.token is None or self._open(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        authorization = headers.get(b"authorization")
        if token_matches(authorization.decode("latin-1") if authorization else None, self.token):
            await self.app(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD") and self._ticket_ok(scope):
            await self.app(scope, receive, send)
            return
        error = Unauthorized("a valid bearer token is required")
        if openai_errors.is_openai_path(scope["path"]):
            response = openai_errors.from_yoi(error)  # OpenAI's clients read only their shape
        else:
            response = JSONResponse(
                error.body().model_dump(), status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        await response(scope, receive, send)

    @staticmethod
    def _open(path: str) -> bool:
        return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)

    def _ticket_ok(self, scope: Scope) -> bool:
        ticket = _ticket(scope)
        if ticket is None:
            return False
        path: str = scope["path"]
        match = _WORKER_STREAM.match(path)
        if match is not None:
            return self.tickets.verify(ticket, match.group(1), match.group(2))
        companion = self.companion_id()
        if path == _COMPANION_STREAM and companion is not None:
            return self.tickets.verify(ticket, EMBEDDED_RUNTIME_ID, companion)
        return False
