"""The OpenAPI document as strict as the server, and `/docs` served with no CDN.

FastAPI derives the schema from the routes and models; this adds what they cannot say:

- the auth: a `bearer` scheme on every protected operation (required when the gateway has a
  token, optional when it has none), plus the `stream_ticket` query key on the event streams;
  the open paths (`auth.OPEN_PATHS`) declare no security;
- the limits a runtime checks outside the models: an input's text needs a character that is not
  whitespace (what `str.strip` removes, spelled out so every regex dialect reads it alike) and is
  at most `max_input_chars` long (longer: 413);
- what the hot routes read themselves (`gateway.requests`): `declare(query=…, body=…)` states
  their query parameters and JSON body from the very models they validate with, as FastAPI
  states its own parameters.

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
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from gateway.auth import OPEN_PATHS, api_token
from shared.settings import Settings

DOCS_ASSETS = "/docs/assets"
BEARER = "bearer"
TICKET = "stream_ticket"
STREAM_SUFFIX = "/events/stream"
# Python's `str.isspace` set, which `str.strip` removes (JavaScript's `\s` differs from it).
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK = f"[^{_SPACE}]"
TEXT_BODIES = ("InputRequest", "CompanionMessage", "CreateSchedule")
REF_TEMPLATE = "#/components/schemas/{model}"
_DECLARED_BODIES: dict[str, type[BaseModel]] = {}

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


class _Declared(GenerateJsonSchema):
    """Schemas as FastAPI writes its parameters and bodies: a `null` default is left unsaid
    (not required already says it)."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        if "default" in schema and schema["default"] is None:
            return self.generate_inner(schema["schema"])
        return super().default_schema(schema)


def declare(
    *path: str, query: type[BaseModel] | None = None, body: type[BaseModel] | None = None
) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its `path` parameters (strings), its `query` and
    its JSON `body` itself (`gateway.requests`)."""
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": _path_schema(name)}
        for name in path
    ]
    if query is not None:
        schema = query.model_json_schema(schema_generator=_Declared)
        required = set(schema.get("required", ()))
        for name, field in schema["properties"].items():
            parameter = {"name": name, "in": "query", "required": name in required}
            if "description" in field:
                parameter["description"] = field["description"]
            parameters.append({**parameter, "schema": field})
    extra: dict[str, Any] = {"parameters": parameters} if parameters else {}
    if body is not None:
        _DECLARED_BODIES[body.__name__] = body
        ref = {"$ref": REF_TEMPLATE.format(model=body.__name__)}
        extra["requestBody"] = {"content": {"application/json": {"schema": ref}}, "required": True}
    return extra


def _path_schema(name: str) -> dict[str, str]:
    return {"title": name.replace("_", " ").title(), "type": "string"}


def _declared_components() -> dict[str, Any]:
    models = [(model, "validation") for model in _DECLARED_BODIES.values()]
    _, definitions = models_json_schema(
        models,  # type: ignore[arg-type]  # pydantic's Literal mode
        ref_template=REF_TEMPLATE,
        schema_generator=_Declared,
    )
    return dict(definitions.get("$defs", {}))


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
    schemas = components.setdefault("schemas", {})
    for name, definition in _declared_components().items():
        schemas.setdefault(name, definition)
    components["schemas"] = dict(sorted(schemas.items()))
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


__all__ = ["DOCS_ASSETS", "NOT_BLANK", "build_schema", "declare", "install"]
