"""A knowledge source of many documents, through the HTTP API on real PostgreSQL: a DOCX, a PDF and a page
on loopback live side by side, are found and cited; re-ingesting a name replaces only that document, the
same bytes change nothing; one document is deleted or retried alone; another company sees none of it."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cortex.db.models import Agent, KnowledgeChunk, KnowledgeChunkSet
from cortex.kit.runtime import Runtime
from cortex.knowledge.retrieval import SetTermStats, TermStatsCache
from cortex.knowledge.uploads import company_folder
from tests.knowledge.documents import docx_bytes, pdf_bytes
from tests.knowledge.test_ingestion import ingest_file, make_source, search, upload
from tests.knowledge.test_sources_and_search import openai_embeddings  # noqa: F401 (a fixture)
from tests.scripted_llm import ScriptedLLM
from tests.support import Tenant, chat, create_agent, make_key

SHIPPING: list[tuple[str | None, str]] = [
    ("Heading1", "Shipping"), (None, "Orders of the Quasar kettle ship from Rotterdam within three business days.")]
WARRANTY = ["Warranty", "The Zephyr blender carries a warranty of five years against manufacturing faults."]
PAGE = (b"<html><head><title>Opening hours</title></head><body><main><h1>Store hours</h1>"
        b"<p>The Nebula store opens at 08:30 and closes at 19:00 on weekdays.</p></main></body></html>")


class Site:
    """A loopback web server whose pages the test can change (a page that 404s until it exists)."""

    def __init__(self) -> None:
        self.pages: dict[str, bytes] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8" if body is not None else "text/plain")
                payload = body if body is not None else b"missing"
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def site() -> Iterator[Site]:
    served = Site()
    thread = threading.Thread(target=served.server.serve_forever, daemon=True)
    thread.start()
    yield served
    served.server.shutdown()
    served.server.server_close()


async def ingest_url(client: httpx.AsyncClient, tenant: Tenant, source_id: str, url: str) -> httpx.Response:
    return await client.post("/v1/knowledge/ingest/url", headers=tenant.headers,
                             json={"source_id": source_id, "url": url, "user_id": "u-1"})


async def documents_of(client: httpx.AsyncClient, tenant: Tenant, source_id: str, **query: Any) -> dict[str, Any]:
    response = await client.get(f"/v1/knowledge/sources/{source_id}/documents", headers=tenant.headers,
                                params=query)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def knowledge_version(runtime: Runtime, agent_id: str) -> int:
    async with runtime.database.session() as session:
        version = await session.scalar(select(Agent.knowledge_version).where(Agent.id == uuid.UUID(agent_id)))
    assert version is not None
    return version


async def chunk_ids(runtime: Runtime, document_id: str) -> set[uuid.UUID]:
    async with runtime.database.session() as session:
        return set(await session.scalars(
            select(KnowledgeChunk.id).join(KnowledgeChunkSet, KnowledgeChunkSet.id == KnowledgeChunk.set_id)
            .where(KnowledgeChunkSet.document_id == uuid.UUID(document_id))))


async def three_documents(client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime,
                          site: Site) -> tuple[dict[str, Any], dict[str, str]]:
    """One source holding shipping.docx, warranty.pdf and a page: the source and {name: document id}."""
    source = await make_source(client, tenant, name="Everything")
    site.pages["/hours"] = PAGE
    ids: dict[str, str] = {}
    for name, response in [
        ("shipping.docx", await ingest_file(client, tenant, source["id"],
                                            upload(runtime, tenant, "shipping.docx", docx_bytes(SHIPPING)))),
        ("warranty.pdf", await ingest_file(client, tenant, source["id"],
                                           upload(runtime, tenant, "warranty.pdf", pdf_bytes(WARRANTY)))),
        (f"{site.base}/hours", await ingest_url(client, tenant, source["id"], f"{site.base}/hours")),
    ]:
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "completed" and body["source_id"] == source["id"] and body["chunks_created"] >= 1
        ids[name] = body["document_id"]
    assert len(set(ids.values())) == 3
    return source, ids


async def test_a_docx_a_pdf_and_a_page_live_in_one_source_and_are_cited(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, site: Site, llm: ScriptedLLM) -> None:
    source, ids = await three_documents(client, tenant, runtime, site)
    page = await documents_of(client, tenant, source["id"])
    assert page["total_count"] == 3 and page["page"] == 1
    assert {d["name"]: d["id"] for d in page["items"]} == ids
    for document in page["items"]:
        assert document["status"] == "ready" and document["error"] is None and document["chunk_count"] >= 1
        assert document["embedding_model"] == "minilm" and len(document["content_sha256"]) == 64
    kinds = {d["name"]: d["kind"] for d in page["items"]}
    assert kinds == {"shipping.docx": "file", "warranty.pdf": "file", f"{site.base}/hours": "url"}

    agent = await create_agent(client, tenant, knowledge_source_ids=[source["id"]])
    for query, expected, name in [("where do kettle orders ship from", "Rotterdam", "shipping.docx"),
                                  ("how long is the blender warranty", "five years", "warranty.pdf"),
                                  ("when does the Nebula store open", "08:30", f"{site.base}/hours")]:
        [hit] = await search(client, tenant, agent["id"], query, top_k=1)
        assert expected in hit["text"], (query, hit)
        assert (hit["document_id"], hit["document_name"]) == (ids[name], name)

    message = "Where do kettle orders ship from, how long is the blender warranty, and when does the store open?"
    response = await chat(client, tenant, agent["id"], message)
    assert response.status_code == 200, response.text
    prompt = llm.requests[-1]["messages"][0]["content"]
    for expected in ("Rotterdam", "five years", "08:30"):
        assert expected in prompt
    assert "(shipping.docx)" in prompt and "(warranty.pdf)" in prompt  # a passage names its document
    citations = response.json()["citations"]
    assert {c["document_name"] for c in citations} == set(ids)
    for citation in citations:
        assert citation["document_id"] == ids[citation["document_name"]] and citation["source_id"] == source["id"]
    hits = {h["chunk_id"] for h in await search(client, tenant, agent["id"], message, top_k=5)}
    assert {c["chunk_id"] for c in citations} <= hits

    # A prompt template may place the passages itself, each with its document's name.
    templated = await create_agent(client, tenant, knowledge_source_ids=[source["id"]], system_prompt=(
        "Sources:{% for k in knowledge %}\n- {{ k.document_name }}: {{ k.text }}{% endfor %}"))
    response = await chat(client, tenant, templated["id"], "how long is the blender warranty")
    assert response.status_code == 200, response.text
    assert "- warranty.pdf: " in llm.requests[-1]["messages"][0]["content"]

    # A cache hit sends no prompt: it cites nothing.
    warmed = await client.post("/v1/cache/warm", headers=tenant.headers, json={
        "company_id": str(tenant.company_id), "agent_id": agent["id"],
        "pairs": [{"question": "Do you gift wrap?", "answer": "Yes, for two euros."}]})
    assert warmed.status_code == 200, warmed.text
    cached = (await chat(client, tenant, agent["id"], "Do you gift wrap?")).json()
    assert cached["cached"] is True and cached["citations"] == []


async def test_reingesting_a_name_replaces_only_that_document_and_the_same_bytes_change_nothing(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, site: Site) -> None:
    source, ids = await three_documents(client, tenant, runtime, site)
    agent = await create_agent(client, tenant, knowledge_source_ids=[source["id"]])
    kept = {name: await chunk_ids(runtime, ids[name]) for name in ids}
    old_shipping = kept.pop("shipping.docx")

    # The same name, new content: the same document, new chunks; the other documents are untouched.
    version = await knowledge_version(runtime, agent["id"])
    # Built once: a DOCX (a zip) records the second it was written in.
    revised = docx_bytes([("Heading1", "Shipping"),
                          (None, "Orders of the Quasar kettle now ship from Antwerp overnight.")])
    response = await ingest_file(client, tenant, source["id"], upload(runtime, tenant, "shipping.docx", revised))
    assert response.status_code == 200 and response.json()["status"] == "completed", response.text
    assert response.json()["document_id"] == ids["shipping.docx"]
    assert await knowledge_version(runtime, agent["id"]) == version + 1
    new_shipping = await chunk_ids(runtime, ids["shipping.docx"])
    assert new_shipping and not new_shipping & old_shipping
    assert {name: await chunk_ids(runtime, ids[name]) for name in kept} == kept
    [hit] = await search(client, tenant, agent["id"], "where do kettle orders ship from", top_k=1)
    assert "Antwerp" in hit["text"] and "Rotterdam" not in hit["text"]
    assert (await documents_of(client, tenant, source["id"]))["total_count"] == 3

    # The same bytes again: recognised by their hash, answered at once, nothing embedded or bumped.
    version = await knowledge_version(runtime, agent["id"])
    again = await ingest_file(client, tenant, source["id"], upload(runtime, tenant, "shipping.docx", revised))
    assert again.status_code == 200, again.text
    assert again.json() == {"source_id": source["id"], "status": "unchanged", "chunks_created": 0,
                            "chunks_embedded": 0, "error": None, "document_id": ids["shipping.docx"]}
    assert await chunk_ids(runtime, ids["shipping.docx"]) == new_shipping
    assert await knowledge_version(runtime, agent["id"]) == version
    page_again = await ingest_url(client, tenant, source["id"], f"{site.base}/hours")
    assert page_again.json()["status"] == "unchanged" and page_again.json()["document_id"] == ids[f"{site.base}/hours"]

    # A failed replacement leaves the document's live chunks searchable, and says why on the document.
    broken = await ingest_file(client, tenant, source["id"],
                               upload(runtime, tenant, "warranty.pdf", b"%PDF-1.4 garbage"))
    assert broken.json()["status"] == "failed" and broken.json()["document_id"] == ids["warranty.pdf"]
    assert await chunk_ids(runtime, ids["warranty.pdf"]) == kept["warranty.pdf"]
    [hit] = await search(client, tenant, agent["id"], "how long is the blender warranty", top_k=1)
    assert "five years" in hit["text"]
    document = (await client.get(f"/v1/knowledge/documents/{ids['warranty.pdf']}", headers=tenant.headers)).json()
    assert document["status"] == "failed" and document["error"] and document["chunk_count"] >= 1
    failed = await documents_of(client, tenant, source["id"], status="failed")
    assert [d["id"] for d in failed["items"]] == [ids["warranty.pdf"]] and failed["total_count"] == 1
    ready = await documents_of(client, tenant, source["id"], status="ready", page_size=1, page=2)
    assert ready["total_count"] == 2 and len(ready["items"]) == 1
    bad_filter = await client.get(f"/v1/knowledge/sources/{source['id']}/documents", headers=tenant.headers,
                                  params={"status": "gone"})
    assert bad_filter.status_code == 422


async def test_deleting_a_document_removes_only_its_chunks(client: httpx.AsyncClient, tenant: Tenant,
                                                           runtime: Runtime, site: Site) -> None:
    source, ids = await three_documents(client, tenant, runtime, site)
    agent = await create_agent(client, tenant, knowledge_source_ids=[source["id"]])
    kept = {name: await chunk_ids(runtime, ids[name]) for name in ("warranty.pdf", f"{site.base}/hours")}
    version = await knowledge_version(runtime, agent["id"])
    response = await client.delete(f"/v1/knowledge/documents/{ids['shipping.docx']}", headers=tenant.headers)
    assert response.status_code == 204
    assert await knowledge_version(runtime, agent["id"]) == version + 1
    assert await chunk_ids(runtime, ids["shipping.docx"]) == set()
    assert {name: await chunk_ids(runtime, ids[name]) for name in kept} == kept
    hits = await search(client, tenant, agent["id"], "where do kettle orders ship from", top_k=10)
    assert hits and all("Rotterdam" not in h["text"] and h["document_id"] != ids["shipping.docx"] for h in hits)
    assert (await client.get(f"/v1/knowledge/documents/{ids['shipping.docx']}", headers=tenant.headers)
            ).status_code == 404
    assert (await client.delete(f"/v1/knowledge/documents/{ids['shipping.docx']}", headers=tenant.headers)
            ).status_code == 404
    assert (await documents_of(client, tenant, source["id"]))["total_count"] == 2
    # Ingesting the name again adds it back as a new document.
    again = await ingest_file(client, tenant, source["id"],
                              upload(runtime, tenant, "shipping.docx", docx_bytes(SHIPPING)))
    assert again.json()["status"] == "completed" and again.json()["document_id"] != ids["shipping.docx"]


async def test_a_failed_document_is_retried_from_what_it_recorded(client: httpx.AsyncClient, tenant: Tenant,
                                                                  runtime: Runtime, site: Site) -> None:
    source = await make_source(client, tenant)
    agent = await create_agent(client, tenant, knowledge_source_ids=[source["id"]])
    url = f"{site.base}/later"
    failed = await ingest_url(client, tenant, source["id"], url)  # the page is not there yet: a 422 on `url`
    assert failed.status_code == 422 and failed.json()["detail"][0]["loc"] == ["body", "url"], failed.text
    listed = (await client.get(f"/v1/knowledge/sources/{source['id']}/documents", headers=tenant.headers,
                               params={"status": "failed"})).json()
    [document] = listed["items"]
    document_id = document["id"]
    assert document["name"] == url
    assert document["status"] == "failed" and "404" in document["error"] and document["chunk_count"] == 0
    site.pages["/later"] = PAGE
    retried = await client.post(f"/v1/knowledge/documents/{document_id}/retry", headers=tenant.headers)
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "completed" and retried.json()["document_id"] == document_id
    assert retried.json()["source_id"] == source["id"]
    [hit] = await search(client, tenant, agent["id"], "when does the Nebula store open", top_k=1)
    assert "08:30" in hit["text"] and hit["document_id"] == document_id
    # Only a failed document is retried.
    again = await client.post(f"/v1/knowledge/documents/{document_id}/retry", headers=tenant.headers)
    assert again.status_code == 409

    # A file: the recorded file in the upload folder is read again (here, fixed in place), as a job.
    path = upload(runtime, tenant, "manual.md", b"  \n")  # no text yet
    broken = await ingest_file(client, tenant, source["id"], path)
    assert broken.json()["status"] == "failed", broken.text
    file_document = broken.json()["document_id"]
    (company_folder(runtime.settings, tenant.company_id) / path).write_text(
        "# Manual\n\nDescale the Quasar kettle monthly.")
    accepted = await client.post(f"/v1/knowledge/documents/{file_document}/retry", headers=tenant.headers,
                                 json={"async": True})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["document_id"] == file_document and accepted.json()["kind"] == "file"
    await runtime.components["knowledge"].jobs.wait_idle()
    job = (await client.get(f"/v1/jobs/{accepted.json()['job_id']}", headers=tenant.headers)).json()
    assert job["status"] == "completed" and job["document_id"] == file_document, job
    document = (await client.get(f"/v1/knowledge/documents/{file_document}", headers=tenant.headers)).json()
    assert document["status"] == "ready" and document["error"] is None and document["chunk_count"] == 1
    # A file that is gone cannot be retried.
    gone_path = upload(runtime, tenant, "gone.pdf", b"%PDF-1.4 garbage")
    gone = await ingest_file(client, tenant, source["id"], gone_path)
    (company_folder(runtime.settings, tenant.company_id) / gone_path).unlink()
    missing = await client.post(f"/v1/knowledge/documents/{gone.json()['document_id']}/retry",
                                headers=tenant.headers)
    assert missing.status_code == 409 and "no longer there" in missing.json()["detail"]


async def test_another_companys_documents_are_not_found(client: httpx.AsyncClient, tenant: Tenant,
                                                        other_tenant: Tenant, runtime: Runtime, site: Site) -> None:
    source, ids = await three_documents(client, tenant, runtime, site)
    document_id = ids["shipping.docx"]
    for method, path in [("GET", f"/v1/knowledge/documents/{document_id}"),
                         ("DELETE", f"/v1/knowledge/documents/{document_id}"),
                         ("POST", f"/v1/knowledge/documents/{document_id}/retry"),
                         ("GET", f"/v1/knowledge/sources/{source['id']}/documents"),
                         ("GET", f"/v1/knowledge/documents/{uuid.uuid4()}"),
                         ("POST", f"/v1/knowledge/documents/{uuid.uuid4()}/retry"),
                         ("GET", f"/v1/knowledge/sources/{uuid.uuid4()}/documents")]:
        response = await client.request(method, path, headers=other_tenant.headers)
        assert response.status_code == 404, (method, path, response.text)
        assert (await client.request(method, path)).status_code == 401
    # A key without the `knowledge` scope is refused.
    chat_only = {"Authorization": f"Bearer {await make_key(runtime, tenant.company_id, ['chat'])}"}
    for method, path in [("GET", f"/v1/knowledge/documents/{document_id}"),
                         ("DELETE", f"/v1/knowledge/documents/{document_id}"),
                         ("POST", f"/v1/knowledge/documents/{document_id}/retry"),
                         ("GET", f"/v1/knowledge/sources/{source['id']}/documents")]:
        assert (await client.request(method, path, headers=chat_only)).status_code == 403, (method, path)
    assert await chunk_ids(runtime, document_id)  # nothing was deleted
    assert (await client.get(f"/v1/knowledge/documents/{document_id}", headers=tenant.headers)).status_code == 200
    # A foreign agent's search never reaches these documents either.
    foreign_agent = await create_agent(client, other_tenant)
    hits = await search(client, other_tenant, foreign_agent["id"], "where do kettle orders ship from")
    assert hits == []


@pytest.mark.usefixtures("openai_embeddings")
async def test_a_replaced_documents_old_chunks_stay_searchable_until_the_new_ones_are_ready(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm_server: ScriptedLLM) -> None:
    source = await make_source(client, tenant, embedding_model="openai")
    care = await ingest_file(client, tenant, source["id"],
                             upload(runtime, tenant, "care.md", b"# Care\n\nDescale monthly."))
    old = await ingest_file(client, tenant, source["id"],
                            upload(runtime, tenant, "hours.md", b"# Hours\n\nOpen at 08:30."))
    agent = await create_agent(client, tenant, knowledge_source_ids=[source["id"]])
    llm_server.embedding_delay_seconds = 0.3  # each batch of the new version takes a while to embed
    replacing = asyncio.create_task(ingest_file(client, tenant, source["id"],
                                                upload(runtime, tenant, "hours.md", b"# Hours\n\nOpen at 09:15.")))
    seen: list[set[str]] = []
    while not replacing.done():
        hits = await search(client, tenant, agent["id"], "open descale", top_k=10, mode="lexical")
        seen.append({h["text"] for h in hits})
        await asyncio.sleep(0.02)
    response = await replacing
    assert response.json()["status"] == "completed" and response.json()["document_id"] == old.json()["document_id"]
    assert seen and all("Descale monthly." in texts for texts in seen)  # the other document, throughout
    assert all(("Open at 08:30." in texts) != ("Open at 09:15." in texts) for texts in seen)  # old or new
    assert any("Open at 08:30." in texts for texts in seen)  # the old one while the new one was embedded
    texts = {h["text"] for h in await search(client, tenant, agent["id"], "open descale", mode="lexical")}
    assert texts == {"Descale monthly.", "Open at 09:15."} and care.json()["status"] == "completed"


async def test_term_statistics_are_kept_for_every_document_of_a_search(monkeypatch: pytest.MonkeyPatch) -> None:
    """A source has a chunk set per document: the cache is bounded by lexemes held, not by a count of sets
    (dozens of documents must not reload their statistics on every search)."""
    loads: list[uuid.UUID] = []

    async def load(session: Any, set_id: uuid.UUID) -> SetTermStats:
        loads.append(set_id)
        return SetTermStats(1, {"english": {f"w{i}": 1 for i in range(10)}, "simple": {}})

    monkeypatch.setattr(TermStatsCache, "_load", staticmethod(load))
    cache = TermStatsCache(max_lexemes=1_000)
    documents = [uuid.uuid4() for _ in range(60)]
    assert len(await cache.get(None, documents)) == 60  # type: ignore[arg-type]
    await cache.get(None, documents)  # type: ignore[arg-type]
    assert len(loads) == 60  # each set's statistics read once
    await cache.get(None, [uuid.uuid4() for _ in range(100)])  # type: ignore[arg-type]
    assert len(cache._sets) == 100 and cache._held == 1_000  # the oldest sets made room


@pytest.mark.usefixtures("openai_embeddings")
async def test_the_agents_documents_are_one_document_retried_from_the_agent(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm_server: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant, faqs=[
        {"question": "Can I pay with cash?", "answer": "Cash is accepted only in the Lisbon shop."}])
    body = {"agent_id": agent["id"], "company_id": str(tenant.company_id), "user_id": "u-1",
            "embedding_model": "openai"}
    llm_server.embedding_status = 500  # the provider is down
    failed = await client.post("/v1/knowledge/ingest/documents", json=body, headers=tenant.headers)
    assert failed.json()["status"] == "failed", failed.text
    document_id = failed.json()["document_id"]
    document = (await client.get(f"/v1/knowledge/documents/{document_id}", headers=tenant.headers)).json()
    assert (document["kind"], document["name"], document["status"]) == ("documents", "agent documents", "failed")
    llm_server.embedding_status = 200
    retried = await client.post(f"/v1/knowledge/documents/{document_id}/retry", headers=tenant.headers)
    assert retried.status_code == 200 and retried.json()["status"] == "completed", retried.text
    hits = await search(client, tenant, agent["id"], "is cash accepted?", top_k=1, mode="lexical")
    assert "Lisbon" in hits[0]["text"] and hits[0]["document_id"] == document_id
    document = (await client.get(f"/v1/knowledge/documents/{document_id}", headers=tenant.headers)).json()
    assert document["status"] == "ready" and document["embedding_model"] == "openai"
    # The agent's FAQs removed: its document goes, with its chunks.
    assert (await client.patch(f"/v1/agents/{agent['id']}", json={"faqs": []}, headers=tenant.headers)
            ).status_code == 200
    cleared = await client.post("/v1/knowledge/ingest/documents", json=body, headers=tenant.headers)
    assert cleared.status_code == 200 and cleared.json()["document_id"] is None, cleared.text
    assert (await client.get(f"/v1/knowledge/documents/{document_id}", headers=tenant.headers)).status_code == 404
    assert await search(client, tenant, agent["id"], "is cash accepted?", mode="lexical") == []
