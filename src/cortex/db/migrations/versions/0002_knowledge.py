"""knowledge: chunk sets, chunks (pgvector + full-text search) and background jobs

Revision ID: 0002_knowledge
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

revision: str = "0002_knowledge"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One partial HNSW index per embedding model: the column is an untyped `vector` (dimensions vary by
# model) and each index casts it to that model's dimensions. Keep in step with cortex.embeddings.models.
MODEL_DIMENSIONS = {"minilm": 384, "bge-m3": 1024, "openai": 1536, "cohere": 1024}


def hnsw_index_name(model: str) -> str:
    return "ix_knowledge_chunks_hnsw_" + model.replace("-", "_")


def upgrade() -> None:
    op.create_table(
        "knowledge_chunk_sets",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("company_id", sa.UUID(), nullable=False),
        sa.Column("source_id", sa.UUID(), nullable=False),
        sa.Column("embedding_model", sa.String(length=64), nullable=False),
        sa.Column("dimensions", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["source_id"], ["knowledge_sources.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_knowledge_chunk_sets_company_id", "knowledge_chunk_sets", ["company_id"])
    op.create_index("ix_knowledge_chunk_sets_source_id", "knowledge_chunk_sets", ["source_id"])
    # At most one live set per source: readers follow it, a swap retires the old one in the same commit.
    op.create_index("ux_knowledge_chunk_sets_active", "knowledge_chunk_sets", ["source_id"], unique=True,
                    postgresql_where=sa.text("status = 'active'"))

    op.create_table(
        "knowledge_chunks",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("company_id", sa.UUID(), nullable=False),
        sa.Column("source_id", sa.UUID(), nullable=False),
        sa.Column("set_id", sa.UUID(), nullable=False),
        sa.Column("document_ref", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("heading_path", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("token_count", sa.Integer(), nullable=False),
        sa.Column("embedding_model", sa.String(length=64), nullable=False),
        sa.Column("embedding", Vector(), nullable=False),
        # Headings weigh more than body text (weight A vs B); 'simple' is language-neutral (Arabic),
        # 'english' adds stemming and stop words for English text.
        sa.Column("tsv_simple", postgresql.TSVECTOR(), sa.Computed(
            "setweight(to_tsvector('simple', title), 'A') || setweight(to_tsvector('simple', text), 'B')",
            persisted=True), nullable=False),
        sa.Column("tsv_english", postgresql.TSVECTOR(), sa.Computed(
            "setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', text), 'B')",
            persisted=True), nullable=False),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["source_id"], ["knowledge_sources.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["set_id"], ["knowledge_chunk_sets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_knowledge_chunks_set_id", "knowledge_chunks", ["set_id"])
    op.create_index("ix_knowledge_chunks_source_id", "knowledge_chunks", ["source_id"])
    op.create_index("ix_knowledge_chunks_tsv_simple", "knowledge_chunks", ["tsv_simple"], postgresql_using="gin")
    op.create_index("ix_knowledge_chunks_tsv_english", "knowledge_chunks", ["tsv_english"], postgresql_using="gin")
    for model, dims in MODEL_DIMENSIONS.items():
        op.execute(f"CREATE INDEX {hnsw_index_name(model)} ON knowledge_chunks USING hnsw "
                   f"((embedding::vector({dims})) vector_cosine_ops) WHERE embedding_model = '{model}'")

    op.create_table(
        "knowledge_jobs",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("company_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.UUID(), nullable=True),
        sa.Column("agent_id", sa.UUID(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("documents_processed", sa.Integer(), nullable=False),
        sa.Column("chunks_created", sa.Integer(), nullable=False),
        sa.Column("chunks_embedded", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_knowledge_jobs_company_id", "knowledge_jobs", ["company_id"])


def downgrade() -> None:
    op.drop_table("knowledge_jobs")
    op.drop_table("knowledge_chunks")
    op.drop_table("knowledge_chunk_sets")
