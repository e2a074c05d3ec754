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
from cortex.knowledge.uploads import OUTSIDE_FOLDER, company_folder
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


def upload(runtime: Runtime, tenant: Tenant, name: str, data: bytes) -> str:
    """Places a file in the tenant's upload folder; returns its path relative to that folder."""
    folder = company_folder(runtime.settings, tenant.company_id) / uuid.uuid4().hex
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
    path = upload(runtime, tenant, "policy.pdf", pdf_bytes(PDF_LINES))
    response = await ingest_file(client, tenant, pdf_source["id"], path)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"source_id", "status", "chunks_created", "chunks_embedded", "error", "document_id"}
    assert body["status"] == "completed" and body["error"] is None
    assert body["chunks_created"] >= 1 and body["chunks_embedded"] == body["chunks_created"]
    path = upload(runtime, tenant, "sheet.docx", docx_bytes(DOCX_PARAGRAPHS))
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
    await ingest_file(client, tenant, source["id"], upload(runtime, tenant, "sheet.docx", docx_bytes(DOCX_PARAGRAPHS)))
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


async def test_file_path_must_stay_inside_the_companys_folder(client: httpx.AsyncClient, tenant: Tenant,
                                                              runtime: Runtime, tmp_path: Path) -> None:
    source = await make_source(client, tenant)
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    inside = upload(runtime, tenant, "notes.txt", b"hello")
    folder = company_folder(runtime.settings, tenant.company_id)
    link = folder / f"link-{uuid.uuid4().hex}.txt"
    link.symlink_to(outside)
    for path in ("../secret.txt", f"{inside}/../../x.txt", str(outside), "/etc/passwd", link.name,
                 str(runtime.settings.resolved_upload_dir / inside), "missing.txt",
                 upload(runtime, tenant, "program.exe", b"MZ")):
        response = await ingest_file(client, tenant, source["id"], path)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["detail"][0]["loc"] == ["body", "file_path"], path
    assert (await ingest_file(client, tenant, source["id"], str(folder / inside))).status_code == 200
    assert (await ingest_file(client, tenant, source["id"], f"./{inside}")).status_code == 200


async def test_another_companys_file_is_out_of_reach_and_looks_absent(
        client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, runtime: Runtime) -> None:
    """B cannot read A's file by any path, and the answer is the one for a path where nothing is."""
    secret = "The Andromeda merger closes on the ninth of March."
    theirs = upload(runtime, tenant, "plans.md", f"# Plans\n\n{secret}".encode())
    uploads = runtime.settings.resolved_upload_dir
    a_folder, b_folder = (company_folder(runtime.settings, t.company_id) for t in (tenant, other_tenant))
    b_folder.mkdir(parents=True, exist_ok=True)
    (b_folder / "to-a").symlink_to(a_folder, target_is_directory=True)
    b_source = await make_source(client, other_tenant)
    nowhere = uuid.uuid4().hex
    missing = "no such file in your company's upload folder"
    for there, absent, message in [
        (str(a_folder / theirs), str(a_folder / nowhere / "plans.md"), OUTSIDE_FOLDER),  # absolute
        (f"../{tenant.company_id}/{theirs}", f"../{tenant.company_id}/{nowhere}/plans.md", OUTSIDE_FOLDER),
        (f"to-a/{theirs}", f"to-a/{nowhere}/plans.md", OUTSIDE_FOLDER),  # a symlink out of B's folder
        (str(uploads / str(tenant.company_id) / ".." / str(tenant.company_id) / theirs),
         str(uploads / nowhere / "plans.md"), OUTSIDE_FOLDER),
        # Relative paths start in B's own folder: A's id there is just a folder B does not have.
        (f"{tenant.company_id}/{theirs}", f"{tenant.company_id}/{nowhere}/plans.md", missing),
    ]:
        answers = [await ingest_file(client, other_tenant, b_source["id"], path) for path in (there, absent)]
        assert [r.status_code for r in answers] == [422, 422], (there, [r.text for r in answers])
        assert answers[0].json() == answers[1].json() == {
            "detail": [{"loc": ["body", "file_path"], "msg": message, "type": "value_error"}]}, there
    agent = await create_agent(client, other_tenant, knowledge_source_ids=[b_source["id"]])
    assert await search(client, other_tenant, agent["id"], "Andromeda merger", mode="lexical") == []
    # A reads its own file by the relative and by the absolute path.
    a_source = await make_source(client, tenant)
    for path in (theirs, str(a_folder / theirs)):
        assert (await ingest_file(client, tenant, a_source["id"], path)).status_code == 200, path
    a_agent = await create_agent(client, tenant, knowledge_source_ids=[a_source["id"]])
    assert secret in (await search(client, tenant, a_agent["id"], "Andromeda merger"))[0]["text"]


async def test_conversion_failure_is_422_with_body_and_keeps_the_old_chunks(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime) -> None:
    source = await make_source(client, tenant)
    assert (await ingest_file(client, tenant, source["id"], upload(runtime, tenant, "a.pdf", pdf_bytes(PDF_LINES)))
            ).status_code == 200
    agent = await create_agent(client, tenant, knowledge_source_ids=[source["id"]])
    before = await search(client, tenant, agent["id"], "refund")
    broken = upload(runtime, tenant, "broken.pdf", b"%PDF-1.4 garbage")
    response = await ingest_file(client, tenant, source["id"], broken)
    assert response.status_code == 422  # the caller's file, not a server fault
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
    first = await ingest_file(client, tenant, source["id"],
                              upload(runtime, tenant, "a.docx", docx_bytes(DOCX_PARAGRAPHS[:2])))
    second = await ingest_file(client, tenant, source["id"],
                               upload(runtime, tenant, "a.docx", docx_bytes(DOCX_PARAGRAPHS)))
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
    path = upload(runtime, tenant, "sheet.docx", docx_bytes(DOCX_PARAGRAPHS))
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
                                     upload(runtime, tenant, "sheet.docx", docx_bytes(DOCX_PARAGRAPHS[:2])))
    finally:
        runtime.settings.ingest_sync_max_bytes = saved
    assert same.status_code == 200 and same.json()["status"] == "unchanged", same.text
    assert response.status_code == 202
    assert response.json()["document_id"] == same.json()["document_id"]
    component = runtime.components[KNOWLEDGE]
    await component.jobs.wait_idle()
    failed = await ingest_file(client, tenant, source["id"], upload(runtime, tenant, "x.pdf", b"nope"),
                               **{"async": True})
    await component.jobs.wait_idle()
    job = (await client.get(f"/v1/jobs/{failed.json()['job_id']}", headers=tenant.headers)).json()
    assert job["status"] == "failed" and job["error"]
