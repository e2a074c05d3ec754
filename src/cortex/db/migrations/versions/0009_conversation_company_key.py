"""conversation company key: a conversation is (company_id, id), so companies never share conversation ids

Messages reference their conversation by (company_id, conversation_id). A message whose company does not own
the conversation it points at (a first message that raced another company's on the same id) gets a
conversation of its own company, made from its earliest message; one that cannot (its agent is gone, or it
has no customer) is deleted, as its agent's deletion would have deleted it had it been linked to its own
company's conversation. `ix_messages_conversation_created` stays: a conversation id alone already picks out
a handful of rows, and it serves the new foreign key too. `ix_conversations_company_id` goes: the primary key
leads with company_id.

Revision ID: 0009_conversation_company_key
Revises: 0008_job_leases
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_conversation_company_key"
down_revision: str | Sequence[str] | None = "0008_job_leases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE messages DROP CONSTRAINT messages_conversation_id_fkey")
    op.execute("ALTER TABLE conversations DROP CONSTRAINT conversations_pkey")
    op.execute("ALTER TABLE conversations ADD CONSTRAINT conversations_pkey PRIMARY KEY (company_id, id)")
    op.execute("DROP INDEX IF EXISTS ix_conversations_company_id")
    op.execute("""
        INSERT INTO conversations (id, company_id, agent_id, customer_id, channel, metadata, created_at, updated_at)
        SELECT DISTINCT ON (m.company_id, m.conversation_id)
               m.conversation_id, m.company_id, m.agent_id, m.customer_id, coalesce(m.channel, 'whatsapp'),
               '{}'::jsonb, min(m.created_at) OVER owned, max(m.created_at) OVER owned
        FROM messages m
        JOIN agents a ON a.id = m.agent_id AND a.company_id = m.company_id
        WHERE m.customer_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM conversations c
                          WHERE c.company_id = m.company_id AND c.id = m.conversation_id)
        WINDOW owned AS (PARTITION BY m.company_id, m.conversation_id)
        ORDER BY m.company_id, m.conversation_id, m.created_at, m.id
    """)
    op.execute("""
        DELETE FROM messages m
        WHERE NOT EXISTS (SELECT 1 FROM conversations c
                          WHERE c.company_id = m.company_id AND c.id = m.conversation_id)
    """)
    op.execute("""
        ALTER TABLE messages ADD CONSTRAINT messages_conversation_fkey
        FOREIGN KEY (company_id, conversation_id) REFERENCES conversations (company_id, id) ON DELETE CASCADE
    """)


def downgrade() -> None:
    # Fails with a duplicate key while two companies hold the same conversation id: that cannot go back.
    op.execute("ALTER TABLE messages DROP CONSTRAINT messages_conversation_fkey")
    op.execute("ALTER TABLE conversations DROP CONSTRAINT conversations_pkey")
    op.execute("ALTER TABLE conversations ADD CONSTRAINT conversations_pkey PRIMARY KEY (id)")
    op.execute("CREATE INDEX ix_conversations_company_id ON conversations (company_id)")
    op.execute("""
        ALTER TABLE messages ADD CONSTRAINT messages_conversation_id_fkey
        FOREIGN KEY (conversation_id) REFERENCES conversations (id) ON DELETE CASCADE
    """)
