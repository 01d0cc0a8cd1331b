"""The OpenAPI document: short unique operation ids, the bearer scheme, a schema as strict as the
server (requests generated from the schema itself are never refused with 422), and `/docs`
working offline (same-origin assets only, open like the console)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from importlib import resources
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.openapi import NOT_BLANK
from tests.gateway.support import BI, create_worker, open_stream, running_app, settings_for

TOKEN = "docs-test-token"
OPERATION_ID = re.compile(r"^[a-z][a-z_]{2,31}$")
_SPACES = "".join(chr(c) for c in range(0x3001) if chr(c).isspace()) + "\ufeff"
_CHARS = st.characters() | st.sampled_from(_SPACES)
EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def test_operation_ids_are_short_readable_and_unique(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    ids = [op["operationId"] for ops in schema["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert all(OPERATION_ID.match(op_id) for op_id in ids), ids
    wanted = {
        "list_runtimes",
        "get_runtime",
        "list_workers",
        "create_worker",
        "get_worker",
        "send_input",
        "cancel_run",
        "stop_worker",
        "get_transcript",
        "read_events",
        "stream_events",
        "create_stream_ticket",
    }
    assert wanted <= set(ids)


async def test_every_error_code_is_in_the_schema(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    codes = schema["components"]["schemas"]["ErrorBody"]["properties"]["code"]["enum"]
    assert {"not_found", "method_not_allowed", "invalid_input", "internal_error"} <= set(codes)
    assert len(codes) == len(set(codes))


@pytest.mark.parametrize("token", [TOKEN, None])
async def test_the_bearer_scheme_is_declared_where_the_server_wants_it(
    namespace: str, token: str | None
) -> None:
    async with running_app(settings_for(namespace, api_token=token)) as (_, client):
        schema = (await client.get("/openapi.json")).json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["stream_ticket"]["in"] == "query"
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            security = operation["security"]
            if path in ("/healthz", "/readyz"):
                assert security == []
                continue
            assert {"bearer": []} in security, path
            assert ({"stream_ticket": []} in security) == path.endswith("/events/stream")
            assert ({} in security) == (token is None), path  # optional only without a token


async def test_swagger_ui_sends_the_declared_token(namespace: str) -> None:
    """What a generated client or Swagger UI does with the scheme: the token as a header."""
    async with running_app(settings_for(namespace, api_token=TOKEN)) as (_, client):
        schema = (await client.get("/openapi.json")).json()
        scheme = schema["components"]["securitySchemes"]["bearer"]
        header = {"Authorization": f"{scheme['scheme'].title()} {TOKEN}"}
        assert (await client.get("/api/runtimes")).status_code == 401
        assert (await client.get("/api/runtimes", headers=header)).status_code == 200


def test_not_blank_is_what_str_strip_removes() -> None:
    pattern = re.compile(NOT_BLANK)
    for code in range(0x3100):
        char = chr(code)
        assert (pattern.search(char) is None) == (char.strip() == ""), hex(code)


# -- requests generated from the schema --------------------------------------------------------


def _strategy(schema: dict[str, Any], fragment: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Every value the fragment allows, for the keywords this document uses (an unknown one
    fails the test: the generator must not be laxer than the schema)."""
    if "$ref" in fragment:
        name = fragment["$ref"].removeprefix("#/components/schemas/")
        return _strategy(schema, schema["components"]["schemas"][name])
    if "allOf" in fragment:  # older pydantic wraps a `$ref` with a default this way
        (only,) = fragment["allOf"]
        return _strategy(schema, only)
    if "anyOf" in fragment:
        return st.one_of([_strategy(schema, option) for option in fragment["anyOf"]])
    if "enum" in fragment:
        return st.sampled_from(fragment["enum"])
    kind = fragment.get("type")
    if kind == "null":
        return st.none()
    if kind == "integer":
        return st.integers(fragment.get("minimum"), fragment.get("maximum"))
    if kind == "number":
        low, high = fragment.get("minimum"), fragment.get("maximum")
        return st.floats(low, high, allow_nan=False, allow_infinity=False)
    if kind == "string":
        return _strings(fragment)
    if kind == "array":
        items = _strategy(schema, fragment["items"])
        return st.lists(items, min_size=fragment.get("minItems", 0), max_size=fragment["maxItems"])
    if kind == "object":
        return _objects(schema, fragment)
    raise AssertionError(f"no generator for {fragment}")


def _strings(fragment: dict[str, Any]) -> st.SearchStrategy[str]:
    low, high = fragment.get("minLength", 0), fragment.get("maxLength")
    pattern = fragment.get("pattern")
    if pattern is None:  # whitespace of every kind, often: what a server may trim away
        return st.text(_CHARS, min_size=low, max_size=high)
    # JSON Schema's `$` (ECMA-262) is the end of the text; Python's also matches before a final
    # newline, so it becomes `\Z` here.
    python_pattern = re.sub(r"\$$", r"\\Z", pattern)
    strings = st.from_regex(python_pattern)
    return strings.filter(lambda s: low <= len(s) and (high is None or len(s) <= high))


_ANY_JSON = st.none() | st.booleans() | st.integers() | st.text(max_size=5)


def _objects(schema: dict[str, Any], fragment: dict[str, Any]) -> st.SearchStrategy[Any]:
    properties = fragment["properties"]
    required = set(fragment.get("required", ()))
    fields = {name: _strategy(schema, sub) for name, sub in properties.items()}
    optional = sorted(set(fields) - required)
    known = st.fixed_dictionaries(
        {name: fields[name] for name in sorted(required)},
        optional={name: fields[name] for name in optional},
    )
    if fragment.get("additionalProperties") is False:
        return known
    extra_names = st.text(max_size=8).filter(lambda name: name not in properties)
    extras = st.dictionaries(extra_names, _ANY_JSON, max_size=2)
    return st.tuples(known, extras).map(lambda pair: {**pair[1], **pair[0]})


def _allowed_refusal(response: httpx.Response) -> bool:
    """A 422 for a reason no schema can state: a profile the runtime does not know, or a
    webhook URL its allow-list does not name (this app has none: webhooks are off)."""
    if response.status_code != 422:
        return True
    message = response.json()["error"]["message"]
    return "unknown profile" in message or "webhook" in message


def _position(cursor: str) -> tuple[int, int]:
    ms, _, seq = cursor.partition("-")
    return int(ms), int(seq or 0)


def _answered(status: int, body: bytes, cursors: list[str], newest: str) -> bool:
    """200, or 410 for a cursor older than the retained events; a 422 only for a cursor ahead
    of the newest event (no schema can know where a Worker's log ends)."""
    if status in (200, 410):
        return True
    ahead = any(c not in ("", "now") and _position(c) > _position(newest) for c in cursors)
    return status == 422 and ahead and b"invalid_input" in body


@pytest.fixture
async def strict_app(namespace: str) -> Any:
    async with running_app(settings_for(namespace)) as pair:
        yield pair


def _body_schema(schema: dict[str, Any], path: str) -> dict[str, Any]:
    body: dict[str, Any] = schema["paths"][path]["post"]["requestBody"]["content"]
    return dict(body["application/json"]["schema"])


def _query(schema: dict[str, Any], path: str, method: str = "get") -> dict[str, Any]:
    """The operation's query parameters as one object schema (what a client may send)."""
    params = [p for p in schema["paths"][path][method]["parameters"] if p["in"] == "query"]
    return {
        "type": "object",
        "properties": {p["name"]: p["schema"] for p in params},
        "additionalProperties": False,
    }


def _body_test(path_template: str) -> Any:
    @EXAMPLES
    @given(data=st.data())
    async def check(strict_app: tuple[FastAPI, httpx.AsyncClient], data: st.DataObject) -> None:
        app, client = strict_app
        schema = app.openapi()
        worker_id = await create_worker(client, "target")
        path = path_template.format(runtime_id="backend-internal", worker_id=worker_id)
        body = data.draw(_strategy(schema, _body_schema(schema, path_template)))
        response = await client.post(path, json=body)
        assert _allowed_refusal(response), (body, response.text)
        assert response.status_code < 500, response.text

    return check


test_create_worker_bodies_the_schema_allows_are_accepted = _body_test(
    "/api/runtimes/{runtime_id}/workers"
)
test_create_workers_bodies_the_schema_allows_are_accepted = _body_test(
    "/api/runtimes/{runtime_id}/workers:batch"
)
test_send_input_bodies_the_schema_allows_are_accepted = _body_test(
    "/api/runtimes/{runtime_id}/workers/{worker_id}/inputs"
)
test_companion_messages_the_schema_allows_are_accepted = _body_test("/api/companion/messages")


@pytest.mark.parametrize(
    "path_template",
    [
        "/api/runtimes/{runtime_id}/workers/{worker_id}/events",
        "/api/runtimes/{runtime_id}/workers/{worker_id}/transcript",
        "/api/companion/events",
        "/api/companion/transcript",
    ],
)
@EXAMPLES
@given(data=st.data())
async def test_queries_the_schema_allows_are_accepted(
    strict_app: tuple[FastAPI, httpx.AsyncClient], path_template: str, data: st.DataObject
) -> None:
    app, client = strict_app
    schema = app.openapi()
    worker_id = await create_worker(client, "reader")
    sent = await client.post(f"{BI}/workers/{worker_id}/inputs", json={"text": "to read"})
    newest = sent.json()["cursor"]
    drawn = data.draw(_strategy(schema, _query(schema, path_template)))
    # A null is an omitted parameter; a wait is allowed, and only slows the test down.
    query = {k: v for k, v in drawn.items() if v is not None and k != "wait_ms"}
    path = path_template.format(runtime_id="backend-internal", worker_id=worker_id)
    response = await client.get(path, params=query)
    cursors = [v for k, v in query.items() if k in ("after", "before")]
    assert _answered(response.status_code, response.content, cursors, newest), query


@EXAMPLES
@given(data=st.data())
async def test_stream_resumes_the_schema_allows_are_accepted(
    strict_app: tuple[FastAPI, httpx.AsyncClient], data: st.DataObject
) -> None:
    """`after` and `Last-Event-ID` as the schema states them: the stream's first answer is 200
    (or 410 for a cursor older than the retained events), never 422."""
    app, client = strict_app
    schema = app.openapi()
    newest = (await client.get("/api/companion")).json()["cursor"]
    template = "/api/companion/events/stream"
    params = schema["paths"][template]["get"]["parameters"]
    after = next(p["schema"] for p in params if p["name"] == "after")
    resume = next(p["schema"] for p in params if p["name"] == "Last-Event-ID")
    query = {"after": data.draw(_strategy(schema, after))}
    headers = {"Last-Event-ID": data.draw(_strategy(schema, resume))}
    query = {k: v for k, v in query.items() if v is not None}
    headers = {k: v for k, v in headers.items() if v is not None}
    url = f"{template}?{urlencode(query)}" if query else template
    async with open_stream(app, url, headers) as stream:  # httpx's ASGI transport would buffer
        assert stream.status is not None
        cursors = [*query.values(), *headers.values()]
        assert _answered(stream.status, stream.body, cursors, newest), (query, headers)


# -- /docs offline ------------------------------------------------------------------------------


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


@pytest.mark.parametrize("token", [TOKEN, None])
async def test_docs_name_only_same_origin_assets_that_answer(
    namespace: str, token: str | None
) -> None:
    async with running_app(settings_for(namespace, api_token=token)) as (_, client):
        page = await client.get("/docs")  # open like the console: no token sent
        assert page.status_code == 200
        refs = _Refs()
        refs.feed(page.text)
        inline = "\n".join(refs.scripts)
        assert "http://" not in page.text and "https://" not in page.text
        urls = [*refs.urls, *re.findall(r"url: *['\"]([^'\"]+)['\"]", inline)]
        assert any(u.endswith(".js") for u in urls) and any(u.endswith(".css") for u in urls)
        assert "/openapi.json" in urls
        for url in urls:
            parts = urlsplit(url)
            assert not parts.scheme and not parts.netloc and url.startswith("/"), url
            asset = await client.get(url)
            assert asset.status_code == 200, url
            assert asset.content, url
        assert '"validatorUrl": null' in inline  # no call to an online validator either
        if token is not None:
            assert (await client.get("/api/runtimes")).status_code == 401


def test_the_docs_assets_ship_with_a_package() -> None:
    """The files come from an installed package (no CDN, nothing vendored by hand), and its
    Swagger UI reads OpenAPI 3.1, the version FastAPI writes."""
    folder = resources.files("fastapi_offline") / "static"
    bundle = (folder / "swagger-ui-bundle.js").read_text(encoding="utf-8")
    assert (folder / "swagger-ui.css").is_file()
    assert "OpenAPI 3.1" in bundle or "openapi31" in bundle.lower()
