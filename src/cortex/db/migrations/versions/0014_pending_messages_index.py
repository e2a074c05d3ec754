"""the sweep of customer messages left pending: a partial index holds only those rows

Revision ID: 0014_pending_messages_index
Revises: 0013_idempotency_keys
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014_pending_messages_index"
down_revision: str | Sequence[str] | None = "0013_idempotency_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Tiny (only messages awaiting their reply are in it), so the sweep never scans the messages table.
    op.execute("CREATE INDEX IF NOT EXISTS ix_messages_pending ON messages (created_at) WHERE status = 'pending'")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_messages_pending")
