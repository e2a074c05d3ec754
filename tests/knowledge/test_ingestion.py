"""Knowledge ingestion and retrieval end to end: real files, a real page on loopback, real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from cortex.db.models import Agent, KnowledgeChunk, KnowledgeChunkSet
from cortex.kit.runtime import Runtime
from cortex.knowledge.service import KnowledgeComponent
from cortex.pipeline.ports import KNOWLEDGE
from tests.knowledge.documents import docx_bytes, pdf_bytes
from tests.support import Tenant, create_agent

PDF_LINES = ["Refund policy", "Refunds for the Zephyr blender are issued within 14 days of purchase."]
DOCX_PARAGRAPHS: list[tuple[str | None, str]] = [
    ("Heading1", "Warranty"),
    (None, "The Quasar kettle carries a warranty of two years against manufacturing faults."),
    ("Heading1", "Shipping"),
    (None, "Orders ship from Rotterdam within three business days."),
]


async def make_source(client: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    response = await client.post("/v1/knowledge/sources", json={"name": "Manuals", **fields}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


def upload(runtime: Runtime, name: str, data: bytes) -> str:
    folder = runtime.settings.resolved_upload_dir / uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return f"{folder.name}/{name}"


async def ingest_file(client: httpx.AsyncClient, tenant: Tenant, source_id: str, path: str,
                      **extra: Any) -> httpx.Response:
    return await client.post("/v1/knowledge/ingest/file", headers=tenant.headers,
                             json={"source_id": source_id, "file_path": path, "user_id": "u-1", **extra})


async def search(client: httpx.AsyncClient, tenant: Tenant, agent_id: str, query: str,
                 **extra: Any) -> list[dict[str, Any]]:
    response = await client.post("/v1/knowledge/search", headers=tenant.headers,
                                 json={"agent_id": agent_id, "query": query, **extra})
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


async def test_pdf_and_docx_are_ingested_and_found(client: httpx.AsyncClient, tenant: Tenant,
                                                   runtime: Runtime) -> None:
    pdf_source = await make_source(client, tenant, name="Policies")
    docx_source = await make_source(client, tenant, name="Product sheet")
    response = await ingest_file(client, tenant, pdf_source["id"], upload(runtime, "policy.pdf", pdf_bytes(PDF_LINES)))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"source_id", "status", "chunks_created", "chunks_embedded", "error", "document_id"}
    assert body["status"] == "completed" and body["error"] is None
    assert body["chunks_created"] >= 1 and body["chunks_embedded"] == body["chunks_created"]
    path = upload(runtime, "sheet.docx", docx_bytes(DOCX_PARAGRAPHS))
    response = await ingest_file(client, tenant, docx_source["id"], path)
    assert response.status_code == 200 and response.json()["chunks_created"] == 2, response.text

    agent = await create_agent(client, tenant, knowledge_source_ids=[pdf_source["id"], docx_source["id"]])
    for mode in ("hybrid", "dense", "lexical"):
        hits = await search(client, tenant, agent["id"], "how long is the kettle warranty", mode=mode)
        assert hits, mode
        top = hits[0]
        assert set(top) == {"chunk_id", "source_id", "text", "heading_path", "score", "document_id",
                            "document_name"}
        assert top["document_name"] == "sheet.docx"
        assert "two years" in top["text"] and top["heading_path"] == ["Warranty"], (mode, hits)
        assert top["source_id"] == docx_source["id"]
    hits = await search(client, tenant, agent["id"], "refund for the blender", top_k=1)
    assert len(hits) == 1 and "14 days" in hits[0]["text"] and hits[0]["source_id"] == pdf_source["id"]
    source = (await client.get(f"/v1/knowledge/sources/{pdf_source['id']}", headers=tenant.headers)).json()
    assert source["status"] == "ready"


async def test_search_returns_exactly_what_the_context_engine_gets(client: httpx.AsyncClient, tenant: Tenant,
                                                                   runtime: Runtime) -> None:
    source = await make_source(client, tenant)
    await ingest_file(client, tenant, source["id"], upload(runtime, "sheet.docx", docx_bytes(DOCX_PARAGRAPHS)))
    agent = await create_agent(client, tenant, knowledge_source_ids=[source["id"]])
    hits = await search(client, tenant, agent["id"], "where do orders ship from", top_k=2)
    port = runtime.components[KNOWLEDGE]
    assert isinstance(port, KnowledgeComponent)
    async with runtime.database.session() as session:
        from cortex.agents.service import build_config

        config = await build_config(session, tenant.company_id, uuid.UUID(agent["id"]))
    chunks = await port.retrieve(company_id=tenant.company_id, agent=config, query="where do orders ship from",
                                 top_k=2)
    assert [(str(c.chunk_id), c.text, c.score) for c in chunks] == [(h["chunk_id"], h["text"], h["score"])
                                                                      for h in hits]


async def test_file_path_must_stay_inside_the_upload_dir(client: httpx.AsyncClient, tenant: Tenant,
                                                          runtime: Runtime, tmp_path: Path) -> None:
    source = await make_source(client, tenant)
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    inside = upload(runtime, "notes.txt", b"hello")
    link = runtime.settings.resolved_upload_dir / f"link-{uuid.uuid4().hex}.txt"
    link.symlink_to(outside)
    for path in ("../secret.txt", f"{inside}/../../x.txt", str(outside), "/etc/passwd", link.name,
                 "missing.txt", upload(runtime, "program.exe", b"MZ")):
        response = await ingest_file(client, tenant, source["id"], path)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["detail"][0]["loc"] == ["body", "file_path"], path
    absolute = str(runtime.settings.resolved_upload_dir / inside)
    assert (await ingest_file(client, tenant, source["id"], absolute)).status_code == 200


async def test_conversion_failure_is_500_with_body_and_keeps_the_old_chunks(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime) -> None:
    source = await make_source(client, tenant)
    assert (await ingest_file(client, tenant, source["id"], upload(runtime, "a.pdf", pdf_bytes(PDF_LINES)))
            ).status_code == 200
    agent = await create_agent(client, tenant, knowledge_source_ids=[source["id"]])
    before = await search(client, tenant, agent["id"], "refund")
    response = await ingest_file(client, tenant, source["id"], upload(runtime, "broken.pdf", b"%PDF-1.4 garbage"))
    assert response.status_code == 500
    body = response.json()
    assert body["status"] == "failed" and body["error"] and body["chunks_created"] == 0
    assert await search(client, tenant, agent["id"], "refund") == before
    async with runtime.database.session() as session:
        sets = (await session.scalars(select(KnowledgeChunkSet).where(
            KnowledgeChunkSet.source_id == uuid.UUID(source["id"])))).all()
    assert [s.status for s in sets] == ["active"]  # the half-built set is gone


async def test_reingest_replaces_chunks_and_bumps_linked_agents(client: httpx.AsyncClient, tenant: Tenant,
                                                                runtime: Runtime) -> None:
    source = await make_source(client, tenant)
    agent = await create_agent(client, tenant, knowledge_source_ids=[source["id"]])
    # Warm the config cache: the next read must see the new knowledge_version at once.
    await client.get(f"/v1/agents/{agent['id']}/config", headers=tenant.headers)
    first = await ingest_file(client, tenant, source["id"], upload(runtime, "a.docx", docx_bytes(DOCX_PARAGRAPHS[:2])))
    second = await ingest_file(client, tenant, source["id"], upload(runtime, "a.docx", docx_bytes(DOCX_PARAGRAPHS)))
    assert first.json()["document_id"] == second.json()["document_id"]  # the same name: the same document
    async with runtime.database.session() as session:
        chunks = (await session.scalars(select(KnowledgeChunk).where(
            KnowledgeChunk.source_id == uuid.UUID(source["id"])))).all()
        version = await session.scalar(select(Agent.knowledge_version).where(Agent.id == uuid.UUID(agent["id"])))
    assert sorted(c.text[:12] for c in chunks) == ["Orders ship ", "The Quasar k"]  # no leftovers of the old one
    assert version == agent["knowledge_version"] + 2
    config = (await client.get(f"/v1/agents/{agent['id']}/config", headers=tenant.headers)).json()
    assert config["knowledge_version"] == version


async def test_async_ingestion_reports_through_jobs(client: httpx.AsyncClient, tenant: Tenant,
                                                    other_tenant: Tenant, runtime: Runtime) -> None:
    source = await make_source(client, tenant)
    path = upload(runtime, "sheet.docx", docx_bytes(DOCX_PARAGRAPHS))
    response = await ingest_file(client, tenant, source["id"], path, **{"async": True})
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    assert response.headers["location"] == f"/v1/jobs/{job_id}"
    for _ in range(200):
        job = (await client.get(f"/v1/jobs/{job_id}", headers=tenant.headers)).json()
        if job["status"] in ("completed", "failed"):
            break
        await asyncio.sleep(0.05)
    assert job["status"] == "completed" and job["progress"] == 100, job
    assert job["chunks_created"] == 2 and job["chunks_embedded"] == 2 and job["error"] is None
    assert job["source_id"] == source["id"] and job["kind"] == "file"
    assert (await client.get(f"/v1/jobs/{job_id}", headers=other_tenant.headers)).status_code == 404
    assert (await client.get(f"/v1/jobs/{uuid.uuid4()}", headers=tenant.headers)).status_code == 404
    # Above the size limit a call becomes a job by default (new content; the same bytes need no job).
    saved = runtime.settings.ingest_sync_max_bytes
    runtime.settings.ingest_sync_max_bytes = 10
    try:
        same = await ingest_file(client, tenant, source["id"], path)
        response = await ingest_file(client, tenant, source["id"],
                                     upload(runtime, "sheet.docx", docx_bytes(DOCX_PARAGRAPHS[:2])))
    finally:
        runtime.settings.ingest_sync_max_bytes = saved
    assert same.status_code == 200 and same.json()["status"] == "unchanged", same.text
    assert response.status_code == 202
    assert response.json()["document_id"] == same.json()["document_id"]
    component = runtime.components[KNOWLEDGE]
    await component.jobs.wait_idle()
    failed = await ingest_file(client, tenant, source["id"], upload(runtime, "x.pdf", b"nope"), **{"async": True})
    await component.jobs.wait_idle()
    job = (await client.get(f"/v1/jobs/{failed.json()['job_id']}", headers=tenant.headers)).json()
    assert job["status"] == "failed" and job["error"]
