"""portal indexes: conversations by latest activity, failed messages by conversation

Revision ID: 0016_portal_indexes
Revises: 0015_list_sync
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_portal_indexes"
down_revision: str | Sequence[str] | None = "0015_list_sync"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The portal's conversation list: a company's conversations, newest activity first, read a page at a time.
    # It replaces 0015's index of the same name on (company_id, updated_at), which it also serves.
    op.drop_index("ix_conversations_company_updated", table_name="conversations")
    op.create_index("ix_conversations_company_updated", "conversations",
                    ["company_id", sa.text("updated_at DESC"), sa.text("id DESC")])
    # Its "failed" filter: the few failed messages, found without reading every message of the company.
    op.create_index("ix_messages_company_failed", "messages", ["company_id", "conversation_id"],
                    postgresql_where=sa.text("status = 'failed'"))


def downgrade() -> None:
    op.drop_index("ix_messages_company_failed", table_name="messages")
    op.drop_index("ix_conversations_company_updated", table_name="conversations")
    op.create_index("ix_conversations_company_updated", "conversations", ["company_id", "updated_at"])
