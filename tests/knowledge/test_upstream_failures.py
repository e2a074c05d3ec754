"""Failures upstream are not the caller's fault: an embedding provider that fails or answers nonsense is a
502/503 (and a clear job error), a page that cannot be fetched is a 422 on `url`, and a query embedding
that fails degrades search and chat to full-text results, saying so."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.responses import Response

from cortex.db.models import KnowledgeSource, Message
from cortex.kit.runtime import Runtime
from cortex.pipeline.ports import KNOWLEDGE
from tests.knowledge.test_ingestion import ingest_file, make_source, upload
from tests.scripted_llm import ScriptedLLM, refused_api_base
from tests.support import Tenant, chat, create_agent
from tests.webhook_target import WebhookTarget

PAGE = b"# Store hours\n\nThe Nebula store opens at 08:30 and closes at 19:00 on weekdays.\n"


@pytest.fixture
def provider(runtime: Runtime, llm_server: ScriptedLLM, monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedLLM]:
    """The runtime's embedder sends its remote models (openai, cohere) to the scripted server; its local
    model stays loaded."""
    monkeypatch.setattr(runtime.embedder, "_api_base", llm_server.api_base)
    monkeypatch.setattr(runtime.embedder, "_api_key", "sk-test")
    llm_server.embedding_status, llm_server.embedding_body, llm_server.embedding_delay_seconds = 200, None, 0.0
    try:
        yield llm_server
    finally:
        llm_server.embedding_status, llm_server.embedding_body = 200, None


def refuse(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime.embedder, "_api_base", refused_api_base())


async def openai_source(client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime) -> dict[str, Any]:
    source = await make_source(client, tenant, embedding_model="openai")
    response = await ingest_file(client, tenant, source["id"], upload(runtime, tenant, "hours.md", PAGE))
    assert response.status_code == 200 and response.json()["status"] == "completed", response.text
    return source


async def wait_for_job(client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime,
                       accepted: httpx.Response) -> dict[str, Any]:
    assert accepted.status_code == 202, accepted.text
    await runtime.components[KNOWLEDGE].jobs.wait_idle()
    job: dict[str, Any] = (await client.get(f"/v1/jobs/{accepted.json()['job_id']}", headers=tenant.headers)).json()
    return job


async def test_embedding_provider_failures_are_502_or_503_and_keep_the_chunks(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, provider: ScriptedLLM,
        monkeypatch: pytest.MonkeyPatch) -> None:
    source = await openai_source(client, tenant, runtime)
    path = upload(runtime, tenant, "hours-v2.md", PAGE + b"\n# Holidays\n\nClosed on public holidays.\n")

    provider.embedding_status = 500
    failed = await ingest_file(client, tenant, source["id"], path)
    assert failed.status_code == 502, failed.text
    assert failed.json() == {"source_id": source["id"], "status": "failed", "chunks_created": 0,
                             "chunks_embedded": 0, "error": "embedding model openai answered http 500",
                             "document_id": failed.json()["document_id"]}

    provider.embedding_status, provider.embedding_body = 200, {"data": None}
    nonsense = await ingest_file(client, tenant, source["id"], path)
    assert nonsense.status_code == 502, nonsense.text
    assert nonsense.json()["error"] == "embedding model openai answered malformed embeddings"

    refuse(runtime, monkeypatch)
    unreachable = await ingest_file(client, tenant, source["id"], path)
    assert unreachable.status_code == 503, unreachable.text
    assert unreachable.json()["error"] == "embedding model openai is unreachable"
    for response in (failed, nonsense, unreachable):
        assert "TypeError" not in response.text and "Exception" not in response.text

    # The source keeps its first chunks, still live.
    agent = await create_agent(client, tenant, knowledge_source_ids=[source["id"]])
    hits = (await client.post("/v1/knowledge/search", headers=tenant.headers,
                              json={"agent_id": agent["id"], "query": "Nebula opens", "mode": "lexical"})).json()
    assert "08:30" in hits["results"][0]["text"] and "Holidays" not in hits["results"][0]["text"]
    async with runtime.database.session() as session:
        stored = await session.get(KnowledgeSource, uuid.UUID(source["id"]))
    assert stored is not None and stored.status == "ready"


async def test_a_background_job_records_the_embedding_failure(client: httpx.AsyncClient, tenant: Tenant,
                                                              runtime: Runtime, provider: ScriptedLLM) -> None:
    source = await make_source(client, tenant, embedding_model="openai")
    provider.embedding_body = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": "x"}]}
    job = await wait_for_job(client, tenant, runtime, await ingest_file(
        client, tenant, source["id"], upload(runtime, tenant, "hours.md", PAGE), **{"async": True}))
    assert job["status"] == "failed" and job["error"] == "embedding model openai answered malformed embeddings"


async def test_a_page_that_cannot_be_fetched_is_a_422_on_url(client: httpx.AsyncClient, tenant: Tenant,
                                                            runtime: Runtime, webhooks: WebhookTarget) -> None:
    webhooks.answer = lambda call: Response("missing", status_code=404, media_type="text/plain")
    source = await make_source(client, tenant, source_type="url")
    missing = f"{webhooks.base_url}/no/such/page"
    dead = refused_api_base().removesuffix("/v1") + "/page"
    for url, says in ((missing, "the server answered HTTP 404"), (dead, "the connection failed")):
        response = await client.post("/v1/knowledge/ingest/url", headers=tenant.headers,
                                     json={"source_id": source["id"], "url": url, "user_id": "u-1"})
        assert response.status_code == 422, response.text
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", "url"] and url in error["msg"] and says in error["msg"], error
    job = await wait_for_job(client, tenant, runtime, await client.post(
        "/v1/knowledge/ingest/url", headers=tenant.headers,
        json={"source_id": source["id"], "url": missing, "user_id": "u-1", "async": True}))
    assert job["status"] == "failed" and missing in job["error"] and "HTTP 404" in job["error"]


async def test_search_says_when_dense_retrieval_is_down_and_answers_from_full_text(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, provider: ScriptedLLM,
        monkeypatch: pytest.MonkeyPatch) -> None:
    source = await openai_source(client, tenant, runtime)
    agent = await create_agent(client, tenant, knowledge_source_ids=[source["id"]])

    async def search(query: str, mode: str) -> dict[str, Any]:
        response = await client.post("/v1/knowledge/search", headers=tenant.headers,
                                     json={"agent_id": agent["id"], "query": query, "mode": mode})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    healthy = await search("when does the Nebula store open?", "hybrid")
    assert healthy["warnings"] == [] and "08:30" in healthy["results"][0]["text"]
    refuse(runtime, monkeypatch)
    warning = "dense retrieval unavailable: embedding model openai is unreachable; full-text results only"
    for mode in ("hybrid", "dense"):
        degraded = await search(f"what time does the Nebula store open ({mode})?", mode)
        assert degraded["warnings"] == [warning], mode
        assert degraded["results"] and "08:30" in degraded["results"][0]["text"], mode


async def test_chat_answers_and_notes_a_failed_query_embedding(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, provider: ScriptedLLM, llm: ScriptedLLM,
        monkeypatch: pytest.MonkeyPatch) -> None:
    source = await openai_source(client, tenant, runtime)
    agent = await create_agent(client, tenant, knowledge_source_ids=[source["id"]],
                               settings={"cache": {"enabled": False}})
    refuse(runtime, monkeypatch)
    conversation_id = uuid.uuid4()
    response = await chat(client, tenant, agent["id"], "When does the Nebula store open?",
                          conversation_id=conversation_id)
    assert response.status_code == 200, response.text
    assert response.json()["reply"]
    assert "08:30" in llm.requests[-1]["messages"][0]["content"]  # full-text retrieval still fed the prompt
    async with runtime.database.session() as session:
        reply = await session.scalar(select(Message).where(Message.conversation_id == conversation_id,
                                                           Message.role == "assistant"))
    assert reply is not None
    assert reply.metadata_["notes"]["knowledge"] == (
        "dense retrieval unavailable: embedding model openai is unreachable; full-text results only")
