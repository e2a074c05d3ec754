"""Request bodies are bounded at the door: a size cap (413) before they are read, a nesting cap (422) before
they are parsed, and a size cap on every free-form `metadata` object (422 naming the field)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from cortex.kit.body_limit import BodyLimitMiddleware
from cortex.kit.json_bounds import json_depth
from cortex.kit.runtime import Runtime
from tests.knowledge.test_ingestion import make_source
from tests.support import Tenant, create_action, create_agent

MB = 1_048_576


def _chat_body(tenant: Tenant, agent_id: str, **extra: Any) -> dict[str, Any]:
    return {"company_id": str(tenant.company_id), "agent_id": agent_id, "conversation_id": str(uuid.uuid4()),
            "customer_id": "limits-1", "message": "Hello", **extra}


def _nested(depth: int) -> str:
    """`{"a": [[...1...]]}` with `depth` levels in all."""
    return '{"a":' + "[" * (depth - 1) + "1" + "]" * (depth - 1) + "}"


async def _chunks(total: int, size: int, sent: list[int]) -> AsyncIterator[bytes]:
    for _ in range(0, total, size):
        sent.append(size)
        yield b" " * size


def _detail_names_limit(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 413, response.text[:500]
    assert str(limit) in response.json()["detail"]


# --- the size of a body ------------------------------------------------------------------------------

async def test_a_declared_length_over_the_limit_is_refused_unread(client: httpx.AsyncClient,
                                                                  tenant: Tenant) -> None:
    body = json.dumps({"customer_id": "big", "metadata": {"notes": "x" * (3 * MB // 2)}})
    response = await client.post("/v1/customers", content=body, headers={
        **tenant.headers, "Content-Type": "application/json"})
    _detail_names_limit(response, MB)
    assert response.headers["X-Request-ID"]
    assert (await client.get("/v1/customers/big", headers=tenant.headers)).status_code == 404
    # Without a key, and on a path that never reads its body.
    _detail_names_limit(await client.post("/portal/api/login", content=body,
                                          headers={"Content-Type": "application/json"}), MB)
    _detail_names_limit(await client.request("GET", "/health", content=b"x" * (MB + 1)), MB)


async def test_a_chunked_body_is_refused_once_it_passes_the_limit(client: httpx.AsyncClient,
                                                                  tenant: Tenant) -> None:
    sent: list[int] = []
    response = await client.post("/v1/customers", content=_chunks(20 * MB, 64 * 1024, sent),
                                 headers={**tenant.headers, "Content-Type": "application/json"})
    _detail_names_limit(response, MB)
    assert sum(sent) <= MB + 2 * 64 * 1024  # reading stopped at the limit, not at the end of the body
    # A body no route parses as JSON is counted all the same.
    sent.clear()
    plain = await client.post("/v1/customers", content=_chunks(4 * MB, 64 * 1024, sent),
                              headers={**tenant.headers, "Content-Type": "text/plain"})
    _detail_names_limit(plain, MB)
    sent.clear()
    _detail_names_limit(await client.post("/portal/api/login", content=_chunks(4 * MB, 64 * 1024, sent),
                                           headers={"Content-Type": "application/json"}), MB)


async def test_bodies_under_the_limit_are_unaffected(client: httpx.AsyncClient, tenant: Tenant) -> None:
    sent: list[int] = []

    async def customer_in_pieces() -> AsyncIterator[bytes]:
        body = json.dumps({"customer_id": "pieces", "metadata": {"plan": "gold"}}).encode()
        for start in range(0, len(body), 7):
            sent.append(1)
            yield body[start:start + 7]

    created = await client.post("/v1/customers", content=customer_in_pieces(),
                                headers={**tenant.headers, "Content-Type": "application/json"})
    assert created.status_code == 201, created.text[:500]
    assert created.json()["metadata"] == {"plan": "gold"} and len(sent) > 1
    faqs = [{"question": f"Question {n}?", "answer": "y" * 1_000} for n in range(600)]  # ~650 KB
    agent = await client.post("/v1/agents", json={"name": "Big FAQ", "faqs": faqs}, headers=tenant.headers)
    assert agent.status_code == 201, agent.text[:500]


async def test_uploads_get_the_file_limit(client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    source = await make_source(client, tenant)
    path = f"/v1/knowledge/sources/{source['id']}/files"
    # More than the JSON limit is read whole for an upload (and then refused for its type, which is cheap) ...
    text = b"# Hours\n\nWe open at nine.\n" + b"Opening hours are nine to five. " * (3 * MB // 2 // 32)
    read = await client.post(path, headers=tenant.headers, files={"file": ("hours.exe", text, "text/markdown")})
    assert read.status_code == 422 and read.json()["detail"][0]["loc"] == ["body", "file"], read.text[:500]
    # ... up to the file limit, whether the length is declared or the body streams.
    monkeypatch.setattr(runtime.settings, "ingest_max_file_bytes", MB)
    over = await client.post(path, headers=tenant.headers, files={"file": ("hours.md", text, "text/markdown")})
    assert over.status_code == 413, over.text[:500]
    request = client.build_request("POST", path, headers=tenant.headers,
                                   files={"file": ("hours.md", text, "text/markdown")})
    body = request.read()

    async def streamed() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start:start + 64 * 1024]

    chunked = await client.post(path, content=streamed(), headers={
        **tenant.headers, "Content-Type": request.headers["Content-Type"]})
    assert chunked.status_code == 413, chunked.text[:500]
    # Multipart elsewhere is an ordinary body.
    _detail_names_limit(await client.post("/v1/customers", headers=tenant.headers,
                                          files={"file": ("hours.md", text, "text/markdown")}), MB)


async def test_streamed_responses_pass_through() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = await Request(scope, receive).body()

        async def parts() -> AsyncIterator[bytes]:
            for n in range(3):
                yield f"part {n} of {len(body)}\n".encode()

        await StreamingResponse(parts(), media_type="text/plain")(scope, receive, send)

    transport = httpx.ASGITransport(app=BodyLimitMiddleware(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://limits.test") as http:
        async with http.stream("POST", "/", content=b"hello") as response:
            lines = [line async for line in response.aiter_lines()]
        assert lines == ["part 0 of 5", "part 1 of 5", "part 2 of 5"]
        refused = await http.post("/", content=_chunks(2 * MB, 64 * 1024, []))
        assert refused.status_code == 413


# --- the depth of a body -----------------------------------------------------------------------------

def test_depth_is_measured_outside_strings() -> None:
    assert json_depth(b"") == 0
    assert json_depth(b'{"a": [1, {"b": "[[[[{{{{"}], "c": "\\"]]]]"}') == 3
    assert json_depth(_nested(1_000).encode()) == 1_000
    assert json_depth(b"[]" * 100_000) == 1


async def test_a_nesting_bomb_is_a_4xx_on_every_path(client: httpx.AsyncClient, tenant: Tenant) -> None:
    bomb = _nested(1_000)
    assert len(bomb) < 2_100
    json_headers = {"Content-Type": "application/json"}
    agent = await create_agent(client, tenant)
    chat_bomb = json.dumps(_chat_body(tenant, agent["id"]))[:-1] + ', "metadata": ' + bomb + "}"
    attempts = [
        await client.request("GET", "/health", content=bomb, headers=json_headers),
        await client.post("/portal/api/login", content=bomb, headers=json_headers),
        await client.post("/v1/chat", content=bomb, headers=json_headers),
        await client.post("/v1/chat", content=bomb, headers={**tenant.headers, **json_headers}),
        await client.post("/v1/chat", content=chat_bomb, headers={**tenant.headers, **json_headers}),
        await client.post("/v1/customers", content=bomb,
                          headers={**tenant.headers, "Content-Type": "application/merge-patch+json"}),
        # Not declared as JSON: FastAPI does not parse it, so it is an ordinary validation error.
        await client.post("/v1/chat", content=bomb, headers={**tenant.headers, "Content-Type": "text/plain"}),
    ]
    for response in attempts:
        assert 400 <= response.status_code < 500, (response.request.url, response.status_code, response.text)
    assert attempts[0].json()["detail"][0]["msg"] == "JSON must not be nested more than 64 levels deep"


async def test_deep_but_sane_metadata_is_stored(client: httpx.AsyncClient, tenant: Tenant) -> None:
    nested: Any = "leaf"
    for _ in range(50):
        nested = {"n": nested}
    created = await client.post("/v1/customers", json={"customer_id": "deep", "metadata": nested},
                                headers=tenant.headers)
    assert created.status_code == 201, created.text
    assert created.json()["metadata"] == nested
    malformed = await client.post("/v1/customers", content=b'{"customer_id": "x", "metadata": {[}',
                                  headers={**tenant.headers, "Content-Type": "application/json"})
    assert malformed.status_code == 422, malformed.text


# --- free-form metadata ------------------------------------------------------------------------------

def _names_metadata(response: httpx.Response, field: str = "metadata") -> None:
    assert response.status_code == 422, response.text[:500]
    assert ["body", field] in [error["loc"] for error in response.json()["detail"]], response.text[:500]


async def test_metadata_is_bounded_everywhere(client: httpx.AsyncClient, tenant: Tenant) -> None:
    big = {"notes": "x" * 20_000}
    agent = await create_agent(client, tenant)
    _names_metadata(await client.post("/v1/chat", json=_chat_body(tenant, agent["id"], metadata=big),
                                      headers=tenant.headers))
    _names_metadata(await client.post("/v1/customers", json={"customer_id": "meta", "metadata": big},
                                      headers=tenant.headers))
    created = await client.post("/v1/customers", json={"customer_id": "meta", "metadata": {"plan": "gold"}},
                                headers=tenant.headers)
    assert created.status_code == 201
    _names_metadata(await client.patch("/v1/customers/meta", json={"metadata": big}, headers=tenant.headers))
    assert (await client.get("/v1/customers/meta", headers=tenant.headers)).json()["metadata"] == {"plan": "gold"}
    _names_metadata(await client.post("/v1/knowledge/sources", json={"name": "S", "metadata": big},
                                      headers=tenant.headers))
    source = await make_source(client, tenant)
    _names_metadata(await client.patch(f"/v1/knowledge/sources/{source['id']}", json={"metadata": big},
                                       headers=tenant.headers))
    # Many small values add up, and multi-byte text counts in bytes.
    _names_metadata(await client.post("/v1/customers", json={
        "customer_id": "many", "metadata": {f"k{n}": "é" * 500 for n in range(20)}}, headers=tenant.headers))
    fits = await client.post("/v1/customers", json={"customer_id": "fits", "metadata": {"notes": "x" * 16_000}},
                             headers=tenant.headers)
    assert fits.status_code == 201, fits.text[:500]


async def test_action_schemas_are_bounded(client: httpx.AsyncClient, tenant: Tenant) -> None:
    properties = {f"field_{n}": {"type": "string", "description": "d" * 1_000} for n in range(80)}
    schema = {"type": "object", "properties": properties}
    response = await client.post("/v1/actions", json={
        "name": "huge_schema", "webhook_url": "https://hooks.example.com/a", "parameters_schema": schema},
        headers=tenant.headers)
    _names_metadata(response, "parameters_schema")
    action = await create_action(client, tenant, webhook_url="https://hooks.example.com/a")
    patched = await client.patch(f"/v1/actions/{action['id']}", json={"query_schema": schema},
                                 headers=tenant.headers)
    _names_metadata(patched, "query_schema")
