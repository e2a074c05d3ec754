"""observability: messages.cache_checked, so the dashboard can count semantic cache misses

Revision ID: 0005_observability
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_observability"
down_revision: str | Sequence[str] | None = "0004_semantic_cache"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("cache_checked", sa.Boolean(), nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "cache_checked")
