"""Pages on loopback, uploads, agent documents, re-embedding without mixed results, the chat pipeline,
Arabic text, the HNSW index, the CLI, and the contract (401/403/404/422) of every new endpoint."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from cortex.db.models import KnowledgeChunk, KnowledgeSource
from cortex.embeddings.embedder import Embedder
from cortex.kit.runtime import Runtime
from cortex.knowledge.retrieval import reads_script
from tests.knowledge.documents import docx_bytes
from tests.knowledge.test_ingestion import DOCX_PARAGRAPHS, ingest_file, make_source, search, upload
from tests.observability.test_metrics import parse, value
from tests.scripted_llm import ScriptedLLM
from tests.support import Tenant, chat, create_agent, make_key

PAGE = b"""<html><head><title>Opening hours</title></head><body>
<nav>Home | Shop | Contact</nav>
<main><h1>Store hours</h1><p>The Nebula store opens at 08:30 and closes at 19:00 on weekdays.</p>
<h2>Holidays</h2><p>On public holidays the Nebula store is closed.</p></main>
<footer>Copyright Nebula</footer><script>var tracking = 1;</script></body></html>"""


class _Site(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        routes: dict[str, tuple[int, str, bytes]] = {
            "/hours": (200, "text/html; charset=utf-8", PAGE),
            "/big": (200, "text/html", b"<p>" + b"x" * 50_000 + b"</p>"),
            "/empty": (200, "text/html", b"<html><body><script>1</script></body></html>"),
        }
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/hours")
            self.end_headers()
            return
        status, content_type, body = routes.get(self.path, (404, "text/plain", b"missing"))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def openai_embeddings(runtime: Runtime, llm_server: ScriptedLLM) -> Iterator[ScriptedLLM]:
    """The runtime's embedder pointed at the scripted server, which answers /v1/embeddings."""
    saved = runtime.embedder
    runtime.embedder = Embedder(litellm_api_base=llm_server.api_base, litellm_api_key="sk-test")
    llm_server.embedding_status, llm_server.embedding_delay_seconds = 200, 0.0
    try:
        yield llm_server
    finally:
        runtime.embedder.close()
        runtime.embedder = saved
        llm_server.embedding_status, llm_server.embedding_delay_seconds = 200, 0.0


async def ingest_url(client: httpx.AsyncClient, tenant: Tenant, source_id: str, url: str) -> httpx.Response:
    return await client.post("/v1/knowledge/ingest/url", headers=tenant.headers,
                             json={"source_id": source_id, "url": url, "user_id": "u-1"})


async def test_page_on_loopback_is_ingested_without_navigation(client: httpx.AsyncClient, tenant: Tenant,
                                                               runtime: Runtime, site: str) -> None:
    source = await make_source(client, tenant, source_type="url")
    response = await ingest_url(client, tenant, source["id"], f"{site}/moved")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed" and response.json()["chunks_created"] == 2
    async with runtime.database.session() as session:
        chunks = (await session.scalars(select(KnowledgeChunk).where(
            KnowledgeChunk.source_id == uuid.UUID(source["id"])).order_by(KnowledgeChunk.position))).all()
    everything = " ".join(c.text for c in chunks)
    assert "08:30" in everything and "Home | Shop" not in everything and "tracking" not in everything
    assert chunks[0].heading_path == ["Opening hours", "Store hours"]
    agent = await create_agent(client, tenant, knowledge_source_ids=[source["id"]])
    hits = await search(client, tenant, agent["id"], "when does the Nebula store open?", top_k=1)
    assert "08:30" in hits[0]["text"]
    # A page that cannot be fetched is the caller's input: 422 on `url`. One with no text is a 422 too,
    # with the ingestion body saying why.
    missing = await ingest_url(client, tenant, source["id"], site + "/nowhere")
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "url"]
    empty = await ingest_url(client, tenant, source["id"], site + "/empty")
    assert empty.status_code == 422 and empty.json()["status"] == "failed" and empty.json()["error"]
    saved = runtime.settings.ingest_url_max_bytes
    runtime.settings.ingest_url_max_bytes = 10_000
    try:
        too_big = await ingest_url(client, tenant, source["id"], f"{site}/big")
    finally:
        runtime.settings.ingest_url_max_bytes = saved
    assert too_big.status_code == 422 and "larger than" in too_big.json()["detail"][0]["msg"]
    # The previous chunks survived every failure.
    assert "08:30" in (await search(client, tenant, agent["id"], "Nebula store hours", top_k=1))[0]["text"]


async def test_private_addresses_are_refused_unless_allowed(client: httpx.AsyncClient, tenant: Tenant,
                                                           runtime: Runtime, site: str) -> None:
    source = await make_source(client, tenant)
    runtime.settings.allow_private_webhooks = False
    try:
        for url in (f"{site}/hours", "http://10.0.0.1/x", "http://[::1]/x"):
            response = await ingest_url(client, tenant, source["id"], url)
            assert response.status_code == 422, url
            assert response.json()["detail"][0]["loc"] == ["body", "url"]
    finally:
        runtime.settings.allow_private_webhooks = True


async def test_multipart_upload(client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant,
                                runtime: Runtime) -> None:
    source = await make_source(client, tenant)
    files = {"file": ("guide.docx", docx_bytes(DOCX_PARAGRAPHS), "application/octet-stream")}
    counted_before = value(parse(runtime.telemetry.metrics.render().decode()), "cortex_ingestion_chunks_total",
                           embedding_model="minilm")
    response = await client.post(f"/v1/knowledge/sources/{source['id']}/files", files=files,
                                 data={"user_id": "u-2"}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed" and response.json()["chunks_created"] == 2
    counted = value(parse(runtime.telemetry.metrics.render().decode()), "cortex_ingestion_chunks_total",
                    embedding_model="minilm")
    assert counted - counted_before == 2
    saved = list((runtime.settings.resolved_upload_dir / str(tenant.company_id)).iterdir())
    assert any(p.name.endswith("-guide.docx") for p in saved)
    bad = await client.post(f"/v1/knowledge/sources/{source['id']}/files", headers=tenant.headers,
                            files={"file": ("run.exe", b"MZ", "application/octet-stream")})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "file"]
    missing = await client.post(f"/v1/knowledge/sources/{source['id']}/files", headers=tenant.headers)
    assert missing.status_code == 422
    foreign = await client.post(f"/v1/knowledge/sources/{source['id']}/files", headers=other_tenant.headers,
                                files=files)
    assert foreign.status_code == 404


async def test_agent_documents_are_embedded_into_a_linked_source(client: httpx.AsyncClient, tenant: Tenant,
                                                                 other_tenant: Tenant, runtime: Runtime) -> None:
    agent = await create_agent(client, tenant, faqs=[
        {"question": "Can I pay with cash?", "answer": "Cash is accepted only in the Lisbon shop."},
        {"question": "Do you gift wrap?", "answer": "Gift wrapping costs two euros."}],
        scenarios=[{"name": "Lost parcel", "description": "The customer's parcel did not arrive.",
                    "steps": ["Ask for the order number", "Open a carrier claim"]}])
    body = {"agent_id": agent["id"], "company_id": str(tenant.company_id), "user_id": "u-1"}
    response = await client.post("/v1/knowledge/ingest/documents", json=body, headers=tenant.headers)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result == {"agent_id": agent["id"], "status": "completed", "documents_processed": 3,
                      "chunks_created": 3, "chunks_embedded": 3, "error": None, "document_id": result["document_id"]}
    again = await client.post("/v1/knowledge/ingest/documents", json=body, headers=tenant.headers)
    assert again.json()["status"] == "unchanged" and again.json()["chunks_embedded"] == 0  # nothing re-embedded
    assert again.json()["document_id"] == result["document_id"]
    refreshed = (await client.get(f"/v1/agents/{agent['id']}", headers=tenant.headers)).json()
    assert len(refreshed["knowledge_source_ids"]) == 1  # one documents source, reused
    hits = await search(client, tenant, agent["id"], "is cash accepted?", top_k=1)
    assert "Lisbon" in hits[0]["text"] and hits[0]["heading_path"] == ["FAQ"]
    hits = await search(client, tenant, agent["id"], "my parcel never arrived", top_k=1)
    assert "carrier claim" in hits[0]["text"] and hits[0]["heading_path"] == ["Scenario", "Lost parcel"]
    foreign = {**body, "company_id": str(other_tenant.company_id)}
    assert (await client.post("/v1/knowledge/ingest/documents", json=foreign, headers=tenant.headers)
            ).status_code == 404
    other = {**body, "company_id": str(other_tenant.company_id)}
    assert (await client.post("/v1/knowledge/ingest/documents", json=other, headers=other_tenant.headers)
            ).status_code == 404


async def test_reembed_switches_models_without_mixed_results(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, openai_embeddings: ScriptedLLM) -> None:
    source = await make_source(client, tenant)
    paragraphs = list(DOCX_PARAGRAPHS)
    for i in range(3):
        paragraphs += [("Heading1", f"Topic {i}"), (None, f"Note {i}: the kettle warranty covers part {i}.")]
    await ingest_file(client, tenant, source["id"], upload(runtime, tenant, "sheet.docx", docx_bytes(paragraphs)))
    # A second document of the source: re-embedding covers every document.
    await ingest_file(client, tenant, source["id"],
                      upload(runtime, tenant, "care.md", b"# Care\n\nDescale the kettle."))
    agent = await create_agent(client, tenant, knowledge_source_ids=[source["id"]])
    old = {h["chunk_id"] for h in await search(client, tenant, agent["id"], "kettle warranty", top_k=50,
                                                mode="dense")}
    assert len({h["document_name"] for h in await search(client, tenant, agent["id"], "kettle", top_k=50)}) == 2
    openai_embeddings.embedding_delay_seconds = 0.3
    reembed = asyncio.create_task(client.post("/v1/knowledge/reembed", headers=tenant.headers,
                                              json={"source_id": source["id"], "embedding_model": "openai"}))
    seen: list[set[str]] = []
    while not reembed.done():
        seen.append({h["chunk_id"] for h in await search(client, tenant, agent["id"], "kettle warranty", top_k=50)})
        await asyncio.sleep(0.01)
    response = await reembed
    assert response.status_code == 200, response.text
    assert response.json() == {"source_id": source["id"], "status": "completed", "chunks_embedded": len(old),
                               "error": None}
    new = {h["chunk_id"] for h in await search(client, tenant, agent["id"], "kettle warranty", top_k=50,
                                                mode="dense")}
    assert new and not new & old
    assert seen and all(ids <= old or ids <= new for ids in seen)
    hits = await search(client, tenant, agent["id"], "Quasar kettle warranty of two years", top_k=1)
    assert "two years" in hits[0]["text"]
    async with runtime.database.session() as session:
        source_row = await session.get(KnowledgeSource, uuid.UUID(source["id"]))
        models = set((await session.scalars(select(KnowledgeChunk.embedding_model).where(
            KnowledgeChunk.source_id == uuid.UUID(source["id"])))).all())
    assert source_row is not None and source_row.embedding_model == "openai" and models == {"openai"}
    documents = (await client.get(f"/v1/knowledge/sources/{source['id']}/documents", headers=tenant.headers)).json()
    assert [(d["embedding_model"], d["status"]) for d in documents["items"]] == [("openai", "ready")] * 2
    # A failed re-embed leaves the source on its current model and chunks.
    openai_embeddings.embedding_delay_seconds, openai_embeddings.embedding_status = 0.0, 500
    failed = await client.post("/v1/knowledge/reembed", headers=tenant.headers,
                               json={"source_id": source["id"], "embedding_model": "openai"})
    assert failed.status_code == 502 and failed.json()["status"] == "failed"
    assert failed.json()["error"] == "embedding model openai answered http 500"
    # With the provider down, retrieval falls back to full-text search over the same (new) set.
    after = {h["chunk_id"] for h in await search(client, tenant, agent["id"], "kettle warranty again", top_k=50)}
    assert after and after <= new


async def test_chat_retrieves_for_the_right_agent_only(client: httpx.AsyncClient, tenant: Tenant,
                                                       other_tenant: Tenant, runtime: Runtime,
                                                       llm: ScriptedLLM) -> None:
    source = await make_source(client, tenant)
    await ingest_file(client, tenant, source["id"], upload(runtime, tenant, "sheet.docx", docx_bytes(DOCX_PARAGRAPHS)))
    linked = await create_agent(client, tenant, knowledge_source_ids=[source["id"]])
    unlinked = await create_agent(client, tenant)
    response = await chat(client, tenant, linked["id"], "How long is the Quasar kettle warranty?")
    assert response.status_code == 200, response.text
    assert response.json()["step_timings"]["context_engine"] > 0
    assert "warranty of two years" in llm.requests[-1]["messages"][0]["content"]
    await chat(client, tenant, unlinked["id"], "How long is the Quasar kettle warranty?")
    assert "two years" not in llm.requests[-1]["messages"][0]["content"]
    # Another company cannot search with this agent, nor link this source.
    foreign = await client.post("/v1/knowledge/search", headers=other_tenant.headers,
                                json={"agent_id": linked["id"], "query": "warranty"})
    assert foreign.status_code == 404
    refused = await client.post("/v1/agents", headers=other_tenant.headers,
                                json={"name": "thief", "knowledge_source_ids": [source["id"]]})
    assert refused.status_code in (404, 422)


async def test_arabic_text_is_found_lexically_and_hybrid(client: httpx.AsyncClient, tenant: Tenant,
                                                         runtime: Runtime) -> None:
    source = await make_source(client, tenant)
    markdown = ("# سياسة الإرجاع\n\nيمكن إرجاع المنتجات خلال ثلاثين يوما من تاريخ الشراء.\n\n"
                "# الشحن\n\nنشحن الطلبات إلى جميع مدن المملكة خلال يومين.")
    await ingest_file(client, tenant, source["id"], upload(runtime, tenant, "policy.md", markdown.encode()))
    agent = await create_agent(client, tenant, knowledge_source_ids=[source["id"]])
    for mode in ("lexical", "hybrid"):
        hits = await search(client, tenant, agent["id"], "هل يمكن إرجاع المنتجات؟", top_k=1, mode=mode)
        assert hits and "ثلاثين" in hits[0]["text"], mode
        assert hits[0]["heading_path"] == ["سياسة الإرجاع"]


def test_fusion_follows_whether_the_embedding_model_reads_the_query() -> None:
    # MiniLM was trained on English: min-max fusion only when most letters are Latin, reciprocal ranks
    # (robust to a blind dense list) otherwise; multilingual models read everything.
    assert reads_script("minilm", "When does the Nebula store open?")
    assert reads_script("minilm", "Où est ma commande ORD-1234 ?")
    assert not reads_script("minilm", "هل يمكن إرجاع المنتجات؟")
    assert not reads_script("minilm", "ORD-1234 هل وصل طلبي")
    assert reads_script("bge-m3", "هل يمكن إرجاع المنتجات؟") and reads_script("minilm", "12345 ?")


async def test_dense_query_can_use_the_models_hnsw_index(client: httpx.AsyncClient, tenant: Tenant,
                                                         runtime: Runtime) -> None:
    source = await make_source(client, tenant)
    await ingest_file(client, tenant, source["id"], upload(runtime, tenant, "sheet.docx", docx_bytes(DOCX_PARAGRAPHS)))
    vector = "[" + ",".join(["0.05"] * 384) + "]"
    async with runtime.database.session() as session:
        # Tiny tables are cheaper to scan; forbid the alternatives to show the query shape matches the
        # partial expression index (the benchmark shows the planner choosing it on its own at scale).
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            await session.execute(text(f"SET LOCAL {setting} = off"))
        plan = (await session.execute(text(
            "EXPLAIN SELECT id FROM knowledge_chunks c WHERE c.embedding_model = 'minilm' "
            "AND c.source_id = :s ORDER BY c.embedding::vector(384) <=> CAST(:q AS vector(384)) LIMIT 5"),
            {"s": uuid.UUID(source["id"]), "q": vector})).scalars().all()
    assert any("ix_knowledge_chunks_hnsw_minilm" in line for line in plan), plan


async def test_contract_of_the_new_endpoints(client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant,
                                             runtime: Runtime) -> None:
    source = await make_source(client, tenant)
    agent = await create_agent(client, tenant, knowledge_source_ids=[source["id"]])
    foreign_source = await make_source(client, other_tenant)
    foreign_agent = await create_agent(client, other_tenant)
    calls: list[tuple[str, dict[str, Any]]] = [
        ("/v1/knowledge/ingest/file", {"source_id": source["id"], "file_path": "x.txt", "user_id": "u"}),
        ("/v1/knowledge/ingest/url", {"source_id": source["id"], "url": "http://127.0.0.1:9/x", "user_id": "u"}),
        ("/v1/knowledge/ingest/documents", {"agent_id": agent["id"], "company_id": str(tenant.company_id),
                                            "user_id": "u"}),
        ("/v1/knowledge/reembed", {"source_id": source["id"]}),
        ("/v1/knowledge/search", {"agent_id": agent["id"], "query": "hello"}),
    ]
    chat_only = {"Authorization": f"Bearer {await make_key(runtime, tenant.company_id, ['chat'])}"}
    for path, body in calls:
        assert (await client.post(path, json=body)).status_code == 401, path
        assert (await client.post(path, json=body, headers=chat_only)).status_code == 403, path
    assert (await client.get(f"/v1/jobs/{uuid.uuid4()}")).status_code == 401
    assert (await client.get(f"/v1/jobs/{uuid.uuid4()}", headers=chat_only)).status_code == 403
    files = {"file": ("a.txt", b"hello", "text/plain")}
    assert (await client.post(f"/v1/knowledge/sources/{source['id']}/files", files=files)).status_code == 401
    # Another company's ids are unknown.
    for path, body in [
        ("/v1/knowledge/ingest/file", {"source_id": foreign_source["id"], "file_path": "x.txt", "user_id": "u"}),
        ("/v1/knowledge/ingest/url", {"source_id": foreign_source["id"], "url": "http://127.0.0.1:9/",
                                      "user_id": "u"}),
        ("/v1/knowledge/ingest/documents", {"agent_id": foreign_agent["id"], "company_id": str(tenant.company_id),
                                            "user_id": "u"}),
        ("/v1/knowledge/reembed", {"source_id": foreign_source["id"]}),
        ("/v1/knowledge/search", {"agent_id": foreign_agent["id"], "query": "hello"}),
    ]:
        response = await client.post(path, json=body, headers=tenant.headers)
        assert response.status_code == 404, (path, response.text)
    # Malformed input: 422 naming the field, never a 500.
    for path, body, field in [
        ("/v1/knowledge/search", {"agent_id": agent["id"], "query": "x", "top_k": 51}, "top_k"),
        ("/v1/knowledge/search", {"agent_id": agent["id"], "query": ""}, "query"),
        ("/v1/knowledge/search", {"agent_id": agent["id"], "query": "x", "mode": "fuzzy"}, "mode"),
        ("/v1/knowledge/search", {"agent_id": "not-a-uuid", "query": "x"}, "agent_id"),
        ("/v1/knowledge/ingest/url", {"source_id": source["id"], "url": "ftp://x/y", "user_id": "u"}, "url"),
        ("/v1/knowledge/ingest/url", {"source_id": source["id"], "url": "http://x/", "user_id": ""}, "user_id"),
        ("/v1/knowledge/ingest/file", {"source_id": source["id"], "file_path": "", "user_id": "u"}, "file_path"),
        ("/v1/knowledge/ingest/file", {"source_id": source["id"], "file_path": "a\x00b", "user_id": "u"},
         "file_path"),
        ("/v1/knowledge/reembed", {"source_id": source["id"], "embedding_model": "word2vec"}, "embedding_model"),
        ("/v1/knowledge/reembed", {"source_id": source["id"], "embedding_model": "bge-m3"}, "embedding_model"),
        ("/v1/knowledge/reembed", {"source_id": source["id"], "async": "maybe"}, "async"),
        ("/v1/knowledge/ingest/documents", {"agent_id": agent["id"], "user_id": "u"}, "company_id"),
    ]:
        response = await client.post(path, json=body, headers=tenant.headers)
        assert response.status_code == 422, (path, body, response.text)
        assert field in response.json()["detail"][0]["loc"], (path, body, response.json())
    # Re-embedding a source that holds nothing is the caller's mistake: a 422 with a body, not a crash.
    empty = await client.post("/v1/knowledge/reembed", json={"source_id": source["id"]}, headers=tenant.headers)
    assert empty.status_code == 422 and empty.json()["status"] == "failed"
    # A search over an agent without sources returns nothing.
    bare = await create_agent(client, tenant)
    assert await search(client, tenant, bare["id"], "anything") == []


async def test_cli_ingest_with_progress(client: httpx.AsyncClient, tenant: Tenant, database_url: str,
                                       tmp_path: Path) -> None:
    source = await make_source(client, tenant)
    document = tmp_path / "guide.docx"
    document.write_bytes(docx_bytes(DOCX_PARAGRAPHS))
    folder = tmp_path / "manuals"
    (folder / "nested").mkdir(parents=True)
    (folder / "hours.md").write_text("# Hours\n\nThe Orion desk opens at 07:45.")
    (folder / "nested" / "returns.txt").write_text("Returns are accepted for 30 days.")
    (folder / "nested" / "tool.exe").write_bytes(b"MZ")  # skipped: not a supported type

    def cli(source_id: str, *paths: Path) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "cortex.cli", "ingest", *map(str, paths), "--source-id", source_id]
        return subprocess.run(command,
                              env={**os.environ, "DATABASE_URL": database_url}, capture_output=True, text=True,
                              timeout=300)

    result = await asyncio.to_thread(cli, source["id"], document, folder)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert [d["name"] for d in printed] == ["guide.docx", "hours.md", "nested/returns.txt"]
    assert all(d["status"] == "ready" and d["source_id"] == source["id"] for d in printed)
    assert printed[0]["chunk_count"] == 2 and printed[0]["content_sha256"]
    assert "[3/3] nested/returns.txt" in result.stderr  # the one progress bar, over all files
    listed = await client.get(f"/v1/knowledge/sources/{source['id']}/documents", headers=tenant.headers)
    assert listed.json()["total_count"] == 3
    # Again: every document is recognised by its content, nothing re-embedded.
    again = await asyncio.to_thread(cli, source["id"], folder)
    assert again.returncode == 0, again.stderr
    assert [d["id"] for d in json.loads(again.stdout)] == [d["id"] for d in printed[1:]]
    assert "unchanged" in again.stderr
    missing = await asyncio.to_thread(cli, str(uuid.uuid4()), document)
    assert missing.returncode == 2 and "no knowledge source" in missing.stderr
    unsupported = await asyncio.to_thread(cli, source["id"], folder / "nested" / "tool.exe")
    assert unsupported.returncode == 2 and "unsupported" in unsupported.stderr


async def test_every_lexical_ranking_finds_english_and_arabic(client: httpx.AsyncClient, tenant: Tenant,
                                                              runtime: Runtime) -> None:
    from dataclasses import replace

    from cortex.knowledge.service import KnowledgeComponent
    from cortex.pipeline.ports import KNOWLEDGE

    source = await make_source(client, tenant)
    markdown = ("# Returns\n\nThe Zephyr blender may be returned within thirty days.\n\n"
                "# الشحن\n\nنشحن الطلبات إلى جميع مدن المملكة خلال يومين.\n\n"
                "# Shipping\n\nThe parcels of the shop travel with the post.")
    await ingest_file(client, tenant, source["id"], upload(runtime, tenant, "mixed.md", markdown.encode()))
    component = runtime.components[KNOWLEDGE]
    assert isinstance(component, KnowledgeComponent)
    for rank_function in ("ts_rank", "ts_rank_cd", "idf"):
        tuning = replace(component.retriever.tuning, rank_function=rank_function)
        for query, expected in (("can the blender be returned?", "thirty days"), ("متى تشحنون الطلبات", "يومين"),
                                ("it's the (shop) & post's \\ 'parcels'", "post")):
            hits = await component.retriever.search(
                company_id=tenant.company_id, source_ids=[uuid.UUID(source["id"])], query=query, top_k=1,
                mode="lexical", tuning=tuning)
            assert hits and expected in hits[0].text, (rank_function, query, hits)


async def test_retrieval_costs_nothing_for_an_agent_without_live_knowledge(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chat pipeline calls retrieve on every message: an agent without knowledge must not pay for it."""
    from sqlalchemy import event

    from cortex.knowledge.service import KnowledgeComponent
    from cortex.pipeline.ports import KNOWLEDGE

    component = runtime.components[KNOWLEDGE]
    assert isinstance(component, KnowledgeComponent)
    statements: list[str] = []
    embedded: list[str] = []
    real_embed_query = runtime.embedder.embed_query

    async def counting_embed_query(query: str, model: str = "minilm") -> Any:
        embedded.append(query)
        return await real_embed_query(query, model)

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    monkeypatch.setattr(runtime.embedder, "embed_query", counting_embed_query)
    engine = runtime.database.engine
    assert engine is not None
    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        class Bare:
            knowledge_source_ids: list[uuid.UUID] = []

        assert await component.retrieve(company_id=tenant.company_id, agent=Bare(), query="hours?", top_k=5) == []
        assert statements == [] and embedded == []

        # Linked to a source that has no chunk set yet: one lookup, no embedding, no search.
        source = await make_source(client, tenant)
        statements.clear()

        class Linked:
            knowledge_source_ids = [uuid.UUID(source["id"])]

        assert await component.retrieve(company_id=tenant.company_id, agent=Linked(), query="hours?", top_k=5) == []
        assert embedded == [] and len(statements) == 1, statements

        # Once the source has chunks, the same call embeds the query and searches.
        hours = upload(runtime, tenant, "hours.md", b"# Hours\n\nOpen at 08:30.")
        await ingest_file(client, tenant, source["id"], hours)
        statements.clear()
        hits = await component.retrieve(company_id=tenant.company_id, agent=Linked(), query="hours?", top_k=5)
        assert hits and embedded == ["hours?"] and len(statements) > 1
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
