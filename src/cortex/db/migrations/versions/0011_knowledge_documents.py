"""knowledge documents: a source holds many documents, each with its own live chunk set

Revision ID: 0011_knowledge_documents
Revises: 0010_portal_sessions

Each live chunk set becomes one document (its id reused as the document's), so nothing already
indexed is lost: named after its single file or URL, or after the source when it held several.
Half-built and failed sets are invisible to readers and are dropped.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011_knowledge_documents"
down_revision: str | Sequence[str] | None = "0010_portal_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Keep in step with cortex.knowledge.documents.AGENT_DOCUMENTS_NAME.
AGENT_DOCUMENTS_NAME = "agent documents"

_BACKFILL = """
WITH refs AS (
    SELECT s.id AS set_id, min(c.document_ref) AS first_ref, count(DISTINCT c.document_ref) AS refs
    FROM knowledge_chunk_sets s LEFT JOIN knowledge_chunks c ON c.set_id = s.id
    GROUP BY s.id
), named AS (
    SELECT s.id, s.company_id, s.source_id, s.embedding_model, s.chunk_count,
           coalesce(s.activated_at, s.created_at) AS at, src.metadata AS source_metadata,
           CASE WHEN src.source_type = 'documents' THEN 'documents'
                WHEN r.refs = 1 AND r.first_ref ~* '^https?://' THEN 'url' ELSE 'file' END AS kind,
           CASE WHEN src.source_type = 'documents' THEN :agent_documents
                WHEN r.refs = 1 THEN r.first_ref ELSE src.name END AS name
    FROM knowledge_chunk_sets s
    JOIN knowledge_sources src ON src.id = s.source_id
    JOIN refs r ON r.set_id = s.id
)
INSERT INTO knowledge_documents (id, company_id, source_id, kind, name, content_sha256, embedding_model, status,
                                 error, chunk_count, params, created_at, updated_at)
SELECT n.id, n.company_id, n.source_id, n.kind, n.name, NULL, n.embedding_model, 'ready', NULL, n.chunk_count,
       jsonb_strip_nulls(CASE
           WHEN n.kind = 'url' THEN jsonb_build_object('url', n.name)
           WHEN n.kind = 'documents' THEN jsonb_build_object('agent_id', n.source_metadata ->> 'agent_id')
           ELSE jsonb_build_object('file', n.name, 'path', (
               SELECT j.params ->> 'path' FROM knowledge_jobs j
               WHERE j.source_id = n.source_id AND j.kind = 'file' AND j.params ->> 'file' = n.name
               ORDER BY j.created_at DESC LIMIT 1))
       END),
       n.at, n.at
FROM named n
"""


def upgrade() -> None:
    op.create_table(
        "knowledge_documents",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("company_id", sa.UUID(), nullable=False),
        sa.Column("source_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=True),
        sa.Column("embedding_model", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["source_id"], ["knowledge_sources.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_knowledge_documents_company_id", "knowledge_documents", ["company_id"])
    op.create_index("ix_knowledge_documents_source_id", "knowledge_documents", ["source_id"])
    op.create_index("ux_knowledge_documents_name", "knowledge_documents",
                    ["source_id", "kind", sa.text("md5(name)")], unique=True)

    op.execute("DELETE FROM knowledge_chunk_sets WHERE status <> 'active'")
    op.add_column("knowledge_chunk_sets", sa.Column("document_id", sa.UUID(), nullable=True))
    op.execute(sa.text(_BACKFILL).bindparams(agent_documents=AGENT_DOCUMENTS_NAME))
    op.execute("UPDATE knowledge_chunk_sets SET document_id = id")
    op.alter_column("knowledge_chunk_sets", "document_id", nullable=False)
    op.create_foreign_key("fk_knowledge_chunk_sets_document_id", "knowledge_chunk_sets", "knowledge_documents",
                          ["document_id"], ["id"], ondelete="CASCADE")
    op.create_index("ix_knowledge_chunk_sets_document_id", "knowledge_chunk_sets", ["document_id"])
    # At most one live set per document (a source now has one per document).
    op.drop_index("ux_knowledge_chunk_sets_active", table_name="knowledge_chunk_sets")
    op.create_index("ux_knowledge_chunk_sets_active", "knowledge_chunk_sets", ["document_id"], unique=True,
                    postgresql_where=sa.text("status = 'active'"))


def downgrade() -> None:
    # One live set per source again: the newest document's set stays, the others go.
    op.execute("""
        DELETE FROM knowledge_chunk_sets s
        WHERE s.id NOT IN (SELECT DISTINCT ON (source_id) id FROM knowledge_chunk_sets
                           WHERE status = 'active' ORDER BY source_id, activated_at DESC NULLS LAST, id)
    """)
    op.drop_index("ux_knowledge_chunk_sets_active", table_name="knowledge_chunk_sets")
    op.create_index("ux_knowledge_chunk_sets_active", "knowledge_chunk_sets", ["source_id"], unique=True,
                    postgresql_where=sa.text("status = 'active'"))
    op.drop_index("ix_knowledge_chunk_sets_document_id", table_name="knowledge_chunk_sets")
    op.drop_constraint("fk_knowledge_chunk_sets_document_id", "knowledge_chunk_sets", type_="foreignkey")
    op.drop_column("knowledge_chunk_sets", "document_id")
    op.drop_table("knowledge_documents")
