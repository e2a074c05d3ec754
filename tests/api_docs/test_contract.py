"""The OpenAPI document as a contract: it equals the checked-in `openapi.json`, every operation says who may
call it and what it answers, and the docs pages work without internet."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from cortex.api_docs.snapshot import SNAPSHOT, live_schema, render

REFRESH = "python -m cortex.api_docs.snapshot"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return live_schema()


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in schema["paths"].items() for method, op in ops.items()]


def test_live_schema_equals_the_checked_in_snapshot(schema: dict[str, Any]) -> None:
    assert SNAPSHOT.exists(), f"openapi.json is missing: run `{REFRESH}`"
    assert SNAPSHOT.read_text() == render(schema), f"the API contract changed: run `{REFRESH}` and commit openapi.json"


def test_every_operation_has_a_summary_a_description_and_a_tag(schema: dict[str, Any]) -> None:
    declared_tags = {tag["name"] for tag in schema["tags"]}
    for method, path, op in _operations(schema):
        assert op.get("summary") and op.get("description"), (method, path)
        assert op.get("tags") and set(op["tags"]) <= declared_tags, (method, path, op.get("tags"))


def test_every_v1_operation_takes_the_bearer_key_and_names_its_scope(schema: dict[str, Any]) -> None:
    scheme = schema["components"]["securitySchemes"]["apiKey"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer"}
    for method, path, op in _operations(schema):
        if not path.startswith("/v1"):
            continue
        assert op["security"] == [{"apiKey": []}], (method, path)
        assert re.search(r"API key with the `[a-z*]+` scope", op["description"]), (method, path)


def test_every_error_status_has_a_body_schema(schema: dict[str, Any]) -> None:
    for method, path, op in _operations(schema):
        statuses = {int(code) for code in op["responses"]}
        assert 500 in statuses, (method, path)
        if path.startswith("/v1"):
            assert {401, 403, 429} <= statuses, (method, path)
        if op.get("parameters") or op.get("requestBody"):
            assert 422 in statuses, (method, path)
        for code, response in op["responses"].items():
            if int(code) >= 400:
                assert response["content"]["application/json"]["schema"], (method, path, code)
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_chat_documents_what_it_really_answers(schema: dict[str, Any]) -> None:
    chat = schema["paths"]["/v1/chat"]["post"]
    assert {"400", "401", "403", "404", "409", "422", "429", "500", "503", "504"} <= set(chat["responses"])
    assert chat["requestBody"]["content"]["application/json"]["example"]["message"]
    assert chat["responses"]["429"]["headers"]["Retry-After"]
    completions = schema["paths"]["/v1/chat/completions"]["post"]["responses"]["404"]
    assert completions["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/OpenAIError"}


def test_lists_document_their_sort_fields_and_bad_sort_is_a_422_on_sort(schema: dict[str, Any]) -> None:
    for method, path, op in _operations(schema):
        page = op["responses"].get("200", {}).get("content", {}).get("application/json", {}).get("schema", {})
        if method != "GET" or not page.get("$ref", "").startswith("#/components/schemas/Page_"):
            continue
        names = {p["name"]: p for p in op["parameters"]}
        assert {"page", "page_size", "sort", "created_after", "updated_after"} <= set(names), path
        assert "Fields:" in names["sort"]["description"] and names["sort"]["schema"]["pattern"], path
    page_schema = schema["components"]["schemas"]["Page_AgentPublic_"]
    assert {"total_pages", "has_more", "total_count"} <= set(page_schema["required"])


async def test_docs_pages_load_their_assets_from_this_server(client: httpx.AsyncClient) -> None:
    for page, assets in (("/docs", ("swagger-ui-bundle.js", "swagger-ui.css")), ("/redoc", ("redoc.standalone.js",))):
        response = await client.get(page)
        assert response.status_code == 200 and "text/html" in response.headers["content-type"]
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", response.text) + re.findall(
            r"""url: ?["']([^"']+)["']""", response.text)
        assert urls and all(url.startswith("/") for url in urls), urls  # nothing from another host
        for asset in assets:
            assert f"/docs-assets/{asset}" in response.text
            served = await client.get(f"/docs-assets/{asset}")
            assert served.status_code == 200 and len(served.content) > 10_000, asset
    assert (await client.get("/openapi.json")).json()["components"]["securitySchemes"]["apiKey"]


def test_examples_are_valid_requests(schema: dict[str, Any]) -> None:
    import jsonschema

    checked = 0
    for method, path, op in _operations(schema):
        media = op.get("requestBody", {}).get("content", {}).get("application/json", {})
        if "example" not in media:
            continue
        document = {**media["schema"], "components": schema["components"]}
        jsonschema.validate(media["example"], document, cls=jsonschema.Draft202012Validator)
        checked += 1
    assert checked >= 10
