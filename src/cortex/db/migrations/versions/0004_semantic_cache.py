"""semantic cache entries

Revision ID: 0004_semantic_cache
Revises: 0001
Create Date: 2026-11-25 07:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

revision: str = "0004_semantic_cache"
down_revision: str | Sequence[str] | None = "0003_memory"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "semantic_cache_entries",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("company_id", sa.UUID(), nullable=False),
        sa.Column("agent_id", sa.UUID(), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("config_version", sa.Integer(), nullable=False),
        sa.Column("knowledge_version", sa.Integer(), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("normalized_question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("embedding", Vector(384), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=True),
        sa.Column("conversation_id", sa.UUID(), nullable=True),
        sa.Column("reply_message_id", sa.UUID(), nullable=True),
        sa.Column("hit_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_hit_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("agent_id", "origin", "config_version", "knowledge_version", "normalized_question",
                            name="uq_semantic_cache_scope_question"),
    )
    op.create_index("ix_semantic_cache_company", "semantic_cache_entries", ["company_id"])
    op.create_index("ix_semantic_cache_scope", "semantic_cache_entries",
                    ["agent_id", "config_version", "knowledge_version", "seq"])
    op.create_index("ix_semantic_cache_customer", "semantic_cache_entries", ["company_id", "customer_id"])
    op.create_index("ix_semantic_cache_embedding_hnsw", "semantic_cache_entries", ["embedding"],
                    postgresql_using="hnsw", postgresql_ops={"embedding": "vector_cosine_ops"})


def downgrade() -> None:
    op.drop_table("semantic_cache_entries")
