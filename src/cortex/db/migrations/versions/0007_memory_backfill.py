"""memory backfill: token counts and concepts for the facts stored before 0006_memory_tuning

Revision ID: 0007_memory_backfill
Revises: 0006_memory_tuning
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_memory_backfill"
down_revision: str | Sequence[str] | None = "0006_memory_tuning"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1_000


def upgrade() -> None:
    # Computed in Python with the code that computes them for new facts (the tokenizer and the concept
    # map), so an old fact is recalled and budgeted exactly like one stored today.
    from cortex.memory.concepts import fact_concepts
    from cortex.memory.repository import count_tokens

    bind = op.get_bind()
    select_batch = sa.text("SELECT id, subject, fact FROM memory_facts "
                           "WHERE (token_count IS NULL OR concepts IS NULL) AND id > :after ORDER BY id LIMIT :n")
    update = sa.text("UPDATE memory_facts SET token_count = coalesce(token_count, :tokens), "
                     "concepts = coalesce(concepts, CAST(:concepts AS varchar(32)[])) WHERE id = :id")
    after = "00000000-0000-0000-0000-000000000000"
    while rows := bind.execute(select_batch, {"after": after, "n": BATCH}).all():
        bind.execute(update, [{"id": fact_id, "tokens": count_tokens(fact), "concepts": fact_concepts(subject, fact)}
                              for fact_id, subject, fact in rows])
        after = rows[-1][0]


def downgrade() -> None:
    pass  # the values are derived from each fact; 0006's downgrade drops the columns themselves
