"""job leases: a knowledge job's attempts and the worker holding it, so a dead worker's job is resumed

Revision ID: 0008_job_leases
Revises: 0007_memory_backfill
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_job_leases"
down_revision: str | Sequence[str] | None = "0007_memory_backfill"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("knowledge_jobs", sa.Column("attempts", sa.Integer(), server_default="1", nullable=False))
    op.add_column("knowledge_jobs", sa.Column("lease_owner", sa.UUID(), nullable=True))
    op.create_index("ix_knowledge_jobs_unfinished", "knowledge_jobs", ["updated_at"],
                    postgresql_where=sa.text("status IN ('queued', 'running')"))


def downgrade() -> None:
    op.drop_index("ix_knowledge_jobs_unfinished", table_name="knowledge_jobs")
    op.drop_column("knowledge_jobs", "lease_owner")
    op.drop_column("knowledge_jobs", "attempts")
