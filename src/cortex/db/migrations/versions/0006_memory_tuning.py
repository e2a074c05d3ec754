"""memory tuning: a fact's token count and its subject's concepts, computed once when it is stored

Revision ID: 0006_memory_tuning
Revises: 0005_observability
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_memory_tuning"
down_revision: str | Sequence[str] | None = "0005_observability"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL on rows stored before this revision: recall counts those tokens itself, and they match no concept.
    op.add_column("memory_facts", sa.Column("token_count", sa.Integer(), nullable=True))
    op.add_column("memory_facts", sa.Column("concepts", postgresql.ARRAY(sa.String(length=32)), nullable=True))


def downgrade() -> None:
    op.drop_column("memory_facts", "concepts")
    op.drop_column("memory_facts", "token_count")
