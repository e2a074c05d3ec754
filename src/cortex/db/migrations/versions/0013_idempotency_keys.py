"""idempotency keys (a retried chat is one turn) and agent slugs (the `model` name of the OpenAI-compatible API)

Revision ID: 0013_idempotency_keys
Revises: 0012_events_webhooks
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013_idempotency_keys"
down_revision: str | Sequence[str] | None = "0012_events_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("agents", sa.Column("slug", sa.String(length=64), nullable=True))
    # NULLs are distinct: agents without a slug do not collide.
    op.create_index("uq_agents_company_slug", "agents", ["company_id", "slug"], unique=True)
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("company_id", sa.UUID(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False, server_default="pending"),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("company_id", "key"),
    )
    # The sweep of a company's expired keys.
    op.create_index("ix_idempotency_keys_company_created", "idempotency_keys", ["company_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_company_created", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index("uq_agents_company_slug", table_name="agents")
    op.drop_column("agents", "slug")
