"""lists that tools can page and sync: messages carry `updated_at`, and the company-wide lists have indexes

Revision ID: 0014_list_sync
Revises: 0013_idempotency_keys
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_list_sync"
down_revision: str | Sequence[str] | None = "0013_idempotency_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A message changes after it is written (pending -> ok | failed, post-reply tool calls joining it):
    # an incremental sync needs to see that. Existing rows last changed no later than they were made.
    op.add_column("messages", sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                                        nullable=False))
    op.execute("UPDATE messages SET updated_at = created_at")
    # `GET /v1/messages?updated_after=` and `GET /v1/conversations?updated_after=` scan by company and time.
    op.create_index("ix_messages_company_updated", "messages", ["company_id", "updated_at"])
    op.create_index("ix_conversations_company_updated", "conversations", ["company_id", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_conversations_company_updated", table_name="conversations")
    op.drop_index("ix_messages_company_updated", table_name="messages")
    op.drop_column("messages", "updated_at")
