"""Migration 0011 turns every live chunk set of a database at 0008_job_leases into one document: nothing
already indexed is lost, and each source may then hold many documents."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from alembic import command
from sqlalchemy.exc import IntegrityError

from cortex.db.migrate import alembic_config, upgrade
from tests.scratch_db import run_sql, scratch_database

VECTOR = "[" + ",".join(["0.1"] * 384) + "]"


def add_source(url: str, company: uuid.UUID, name: str, source_type: str,
               metadata: dict[str, Any] | None = None) -> uuid.UUID:
    source = uuid.uuid4()
    run_sql(url, "INSERT INTO knowledge_sources (id, company_id, name, description, source_type, embedding_model, "
                 "status, metadata, created_at, updated_at) VALUES (:id, :c, :n, '', :t, 'minilm', 'ready', "
                 "CAST(:m AS jsonb), now(), now())",
            {"id": source, "c": company, "n": name, "t": source_type, "m": json.dumps(metadata or {})})
    return source


def add_set(url: str, company: uuid.UUID, source: uuid.UUID, refs: list[str], status: str = "active") -> uuid.UUID:
    chunk_set = uuid.uuid4()
    run_sql(url, "INSERT INTO knowledge_chunk_sets (id, company_id, source_id, embedding_model, dimensions, status, "
                 "chunk_count, created_by, created_at, activated_at) VALUES (:id, :c, :s, 'minilm', 384, :st, :n, "
                 "'u-1', now(), now())",
            {"id": chunk_set, "c": company, "s": source, "st": status, "n": len(refs)})
    for position, ref in enumerate(refs):
        run_sql(url, "INSERT INTO knowledge_chunks (id, company_id, source_id, set_id, document_ref, position, "
                     "heading_path, title, text, token_count, embedding_model, embedding) VALUES (gen_random_uuid(), "
                     ":c, :s, :set, :ref, :p, '[]', '', :text, 5, 'minilm', CAST(:e AS vector))",
                {"c": company, "s": source, "set": chunk_set, "ref": ref, "p": position,
                 "text": f"passage {position} of {ref}", "e": VECTOR})
    return chunk_set


def test_each_live_chunk_set_becomes_one_document(pg_server_url: str) -> None:
    with scratch_database(pg_server_url, "cortex_documents") as url:
        upgrade(url, "0008_job_leases")
        company = uuid.uuid4()
        run_sql(url, "INSERT INTO companies (id, name, created_at, updated_at) VALUES (:id, 'Old', now(), now())",
                {"id": company})
        agent = uuid.uuid4()
        files = add_source(url, company, "Policies", "file")
        pages = add_source(url, company, "Site", "url")
        several = add_source(url, company, "Bundle", "file")
        faqs = add_source(url, company, "Agent: FAQs and scenarios", "documents", {"agent_id": str(agent)})
        add_source(url, company, "Empty", "file")
        policy_set = add_set(url, company, files, ["policy.pdf", "policy.pdf"])
        add_set(url, company, files, ["half.pdf"], status="building")  # a worker died mid-ingestion
        page_set = add_set(url, company, pages, ["https://example.com/hours"])
        bundle_set = add_set(url, company, several, ["a.md", "b.md"])
        faq_set = add_set(url, company, faqs, ["faq:0", "faq:1", "scenario:0"])
        run_sql(url, "INSERT INTO knowledge_jobs (id, company_id, kind, source_id, status, progress, "
                     "documents_processed, chunks_created, chunks_embedded, created_by, params, created_at, "
                     "updated_at, attempts) VALUES (gen_random_uuid(), :c, 'file', :s, 'completed', 100, 1, 2, 2, "
                     "'u-1', CAST(:p AS jsonb), now(), now(), 1)",
                {"c": company, "s": files,
                 "p": json.dumps({"file": "policy.pdf", "model": "minilm", "path": "abc/policy.pdf"})})
        chunks_before = run_sql(url, "SELECT c.id FROM knowledge_chunks c JOIN knowledge_chunk_sets s "
                                     "ON s.id = c.set_id WHERE s.status = 'active'")

        upgrade(url)

        documents = {row[0]: row[1:] for row in run_sql(url, """
            SELECT id, source_id, kind, name, status, chunk_count, embedding_model, content_sha256, params::text
            FROM knowledge_documents""")}
        assert set(documents) == {policy_set, page_set, bundle_set, faq_set}  # the set's id is the document's
        assert documents[policy_set][:6] == (files, "file", "policy.pdf", "ready", 2, "minilm")
        assert documents[policy_set][6] is None  # the content's hash was never recorded
        assert json.loads(documents[policy_set][7]) == {"file": "policy.pdf", "path": "abc/policy.pdf"}
        assert documents[page_set][:4] == (pages, "url", "https://example.com/hours", "ready")
        assert json.loads(documents[page_set][7]) == {"url": "https://example.com/hours"}
        assert documents[bundle_set][:3] == (several, "file", "Bundle")  # several files: named after the source
        assert documents[faq_set][:5] == (faqs, "documents", "agent documents", "ready", 3)
        assert json.loads(documents[faq_set][7]) == {"agent_id": str(agent)}
        # Every live chunk is still there, reached through its document; the half-built set is gone.
        chunks_after = run_sql(url, "SELECT c.id FROM knowledge_chunks c JOIN knowledge_chunk_sets s "
                                    "ON s.id = c.set_id JOIN knowledge_documents d ON d.id = s.document_id "
                                    "WHERE s.status = 'active'")
        assert sorted(chunks_after) == sorted(chunks_before)
        assert run_sql(url, "SELECT count(*) FROM knowledge_chunk_sets WHERE status <> 'active'") == [(0,)]
        assert run_sql(url, "SELECT count(*) FROM knowledge_chunks WHERE document_ref = 'half.pdf'") == [(0,)]

        # A source now holds a live set per document; a document still holds one.
        run_sql(url, "INSERT INTO knowledge_documents (id, company_id, source_id, kind, name, status, chunk_count, "
                     "params) VALUES (gen_random_uuid(), :c, :s, 'file', 'warranty.pdf', 'ready', 1, '{}')",
                {"c": company, "s": files})
        second = run_sql(url, "SELECT id FROM knowledge_documents WHERE name = 'warranty.pdf'")[0][0]
        run_sql(url, "INSERT INTO knowledge_chunk_sets (id, company_id, source_id, document_id, embedding_model, "
                     "dimensions, status, chunk_count) VALUES (gen_random_uuid(), :c, :s, :d, 'minilm', 384, "
                     "'active', 1)", {"c": company, "s": files, "d": second})
        with pytest.raises(IntegrityError):
            run_sql(url, "INSERT INTO knowledge_chunk_sets (id, company_id, source_id, document_id, embedding_model, "
                         "dimensions, status, chunk_count) VALUES (gen_random_uuid(), :c, :s, :d, 'minilm', 384, "
                         "'active', 1)", {"c": company, "s": files, "d": second})
        with pytest.raises(IntegrityError):  # one document per name in a source
            run_sql(url, "INSERT INTO knowledge_documents (id, company_id, source_id, kind, name, status, "
                         "chunk_count, params) VALUES (gen_random_uuid(), :c, :s, 'file', 'policy.pdf', 'queued', 0, "
                         "'{}')", {"c": company, "s": files})

        # Back to 0008: one live set per source again (the newest), the documents table gone.
        command.downgrade(alembic_config(url), "0008_job_leases")
        assert run_sql(url, "SELECT count(*) FROM knowledge_chunk_sets WHERE source_id = :s", {"s": files}) == [(1,)]
        assert run_sql(url, "SELECT to_regclass('knowledge_documents')") == [(None,)]
        upgrade(url)
        assert run_sql(url, "SELECT count(*) FROM knowledge_documents") == [(4,)]
