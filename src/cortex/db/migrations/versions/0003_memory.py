"""customer memory: facts with embeddings, and the audit log of forgotten customers

Revision ID: 0003_memory
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import HALFVEC
from sqlalchemy.dialects import postgresql

revision: str = "0003_memory"
down_revision: str | Sequence[str] | None = "0002_knowledge"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "memory_facts",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("company_id", sa.UUID(), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("agent_id", sa.UUID(), nullable=True),
        sa.Column("fact", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("subject", sa.String(length=120), nullable=True),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("embedding", HALFVEC(384), nullable=False),
        sa.Column("subject_embedding", HALFVEC(384), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("source_message_id", sa.UUID(), nullable=True),
        sa.Column("superseded_by", sa.UUID(), nullable=True),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_confirmed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    # Keep rows (two 384-dim halfvecs and the text) inline: recall reads every row of one customer.
    op.execute("ALTER TABLE memory_facts SET (toast_tuple_target = 8160)")
    op.create_index("ix_memory_facts_customer", "memory_facts", ["company_id", "customer_id"], unique=False)
    op.create_index(op.f("ix_memory_facts_agent_id"), "memory_facts", ["agent_id"], unique=False)
    op.create_table(
        "memory_audit_log",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("company_id", sa.UUID(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("customer_ref", sa.String(length=64), nullable=False),
        sa.Column("actor_key_id", sa.UUID(), nullable=True),
        sa.Column("actor_name", sa.String(length=100), nullable=True),
        sa.Column("counts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_memory_audit_log_company_id"), "memory_audit_log", ["company_id"], unique=False)
    op.create_index(op.f("ix_memory_audit_log_customer_ref"), "memory_audit_log", ["customer_ref"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_memory_audit_log_customer_ref"), table_name="memory_audit_log")
    op.drop_index(op.f("ix_memory_audit_log_company_id"), table_name="memory_audit_log")
    op.drop_table("memory_audit_log")
    op.drop_index(op.f("ix_memory_facts_agent_id"), table_name="memory_facts")
    op.drop_index("ix_memory_facts_customer", table_name="memory_facts")
    op.drop_table("memory_facts")
