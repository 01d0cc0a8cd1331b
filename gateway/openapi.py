"""The OpenAPI document as strict as the server, and `/docs` served with no CDN.

FastAPI derives the schema from the routes and models; this adds what they cannot say:

- the auth: a `bearer` scheme on every protected operation (required when the gateway has a
  token, optional when it has none), plus the `stream_ticket` query key on the event streams;
  the open paths (`auth.OPEN_PATHS`) declare no security;
- the limits a runtime checks outside the models: an input's text needs a character that is not
  whitespace (what `str.strip` removes, spelled out so every regex dialect reads it alike) and is
  at most `max_input_chars` long (longer: 413).

Swagger UI's files come from the `fastapi-offline` package, mounted at `DOCS_ASSETS`; the page
names only same-origin URLs and turns off Swagger UI's online validator.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from gateway.auth import OPEN_PATHS, api_token
from shared.settings import Settings

DOCS_ASSETS = "/docs/assets"
BEARER = "bearer"
TICKET = "stream_ticket"
STREAM_SUFFIX = "/events/stream"
# Python's `str.isspace` set, which `str.strip` removes (JavaScript's `\s` differs from it).
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK = f"[^{_SPACE}]"
TEXT_BODIES = ("SendInput", "CompanionMessage")

SECURITY_SCHEMES: dict[str, Any] = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "description": "`YOI_API_TOKEN`; required when the gateway has one.",
    },
    TICKET: {
        "type": "apiKey",
        "in": "query",
        "name": "ticket",
        "description": "A stream ticket (`POST …/stream-ticket`), for one Worker's event stream.",
    },
}


def _security(path: str, token_required: bool) -> list[dict[str, list[str]]]:
    if path in OPEN_PATHS:
        return []
    schemes: list[dict[str, list[str]]] = [{BEARER: []}]
    if path.endswith(STREAM_SUFFIX):
        schemes.append({TICKET: []})
    return schemes if token_required else [*schemes, {}]


def build_schema(app: FastAPI, settings: Settings) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        routes=app.routes,
    )
    token_required = api_token(settings) is not None
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            operation["security"] = _security(path, token_required)
    components = schema.setdefault("components", {})
    components["securitySchemes"] = SECURITY_SCHEMES
    for name in TEXT_BODIES:
        text = components["schemas"][name]["properties"]["text"]
        text["pattern"] = NOT_BLANK
        text["maxLength"] = settings.max_input_chars
        text["description"] = (
            f"Not only whitespace; at most {settings.max_input_chars} characters (longer: 413)."
        )
    return schema


def install(app: FastAPI, settings: Settings) -> None:
    """`app.openapi()` builds (once) the strict schema; `/docs` and its assets, offline."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_schema(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
    app.mount(
        DOCS_ASSETS, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets"
    )

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False},
        )


__all__ = ["DOCS_ASSETS", "NOT_BLANK", "build_schema", "install"]
