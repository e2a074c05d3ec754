"""portal sessions: each portal login is a row, so logout revokes its JWT on every worker and across restarts

Revision ID: 0010_portal_sessions
Revises: 0009_conversation_company_key
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_portal_sessions"
down_revision: str | Sequence[str] | None = "0009_conversation_company_key"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "portal_sessions",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("company_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_portal_sessions_user_id", "portal_sessions", ["user_id"], unique=False)
    op.create_index("ix_portal_sessions_company_id", "portal_sessions", ["company_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_portal_sessions_company_id", table_name="portal_sessions")
    op.drop_index("ix_portal_sessions_user_id", table_name="portal_sessions")
    op.drop_table("portal_sessions")
