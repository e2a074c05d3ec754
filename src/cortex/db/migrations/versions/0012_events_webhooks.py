"""events and webhooks: procrastinate's job schema, the event outbox, webhook endpoints and their delivery log

procrastinate's schema is applied from the copy frozen next to the migrations (`sql/procrastinate-3.10.0.sql`,
the package's own `schema.sql` of the pinned release) rather than read from the installed package: a
migration must do the same thing on every database whatever is installed later. A procrastinate upgrade
comes with a new revision that applies the package's migration files for it.

An event's place in the feed is (txid, seq): `seq` is taken at insert time, so two transactions may commit
out of `seq` order; readers only read events of transactions older than every transaction still running
(`events.repository.VISIBLE`), and in that prefix (txid, seq) never gains a row behind a reader.

Revision ID: 0012_events_webhooks
Revises: 0011_knowledge_documents
"""

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.util import await_only

revision: str = "0012_events_webhooks"
down_revision: str | Sequence[str] | None = "0011_knowledge_documents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROCRASTINATE_SQL = Path(__file__).parent.parent / "sql" / "procrastinate-3.10.0.sql"


def _execute_script(script: str) -> None:
    # Many statements with dollar-quoted bodies: asyncpg runs a parameterless script in one simple query,
    # which the prepared statements SQLAlchemy uses cannot.
    driver = op.get_bind().connection.dbapi_connection.driver_connection  # type: ignore[union-attr]
    await_only(driver.execute(script))


def upgrade() -> None:
    _execute_script(PROCRASTINATE_SQL.read_text(encoding="utf-8"))

    op.create_table(
        "events",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("txid", sa.BigInteger(), server_default=sa.text("(pg_current_xact_id()::text)::bigint"),
                  nullable=False),
        sa.Column("company_id", sa.UUID(), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("data", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_events_company_position", "events", ["company_id", "txid", "seq"])
    op.create_index("ix_events_created_at", "events", ["created_at"])
    # Live streams wake on this; the payload is only the company, the stream reads the rows itself.
    op.execute("""
        CREATE FUNCTION cortex_notify_event() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('cortex_events', NEW.company_id::text);
            RETURN NULL;
        END;
        $$
    """)
    op.execute("CREATE TRIGGER events_notify AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION cortex_notify_event()")

    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("company_id", sa.UUID(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("description", sa.String(500), server_default="", nullable=False),
        sa.Column("event_types", postgresql.ARRAY(sa.String(64)), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("previous_secret_encrypted", sa.Text(), nullable=True),
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_reason", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_endpoints_company_id", "webhook_endpoints", ["company_id"])

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("company_id", sa.UUID(), nullable=False),
        sa.Column("endpoint_id", sa.UUID(), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("status", sa.String(16), server_default="pending", nullable=False),
        sa.Column("attempt_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("schedule_index", sa.Integer(), server_default="0", nullable=False),
        sa.Column("job_token", sa.UUID(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["endpoint_id"], ["webhook_endpoints.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_deliveries_endpoint", "webhook_deliveries", ["endpoint_id", "created_at"])
    op.create_index("ix_webhook_deliveries_event_id", "webhook_deliveries", ["event_id"])

    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("delivery_id", sa.UUID(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("response_excerpt", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["delivery_id"], ["webhook_deliveries.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_attempts_delivery", "webhook_attempts", ["delivery_id", "attempted_at"])


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
    op.execute("DROP TRIGGER IF EXISTS events_notify ON events")
    op.execute("DROP FUNCTION IF EXISTS cortex_notify_event()")
    op.drop_table("events")
    op.execute("""
        DO $$
        DECLARE fn record;
        BEGIN
            FOR fn IN SELECT oid::regprocedure AS signature FROM pg_proc WHERE proname LIKE 'procrastinate%' LOOP
                EXECUTE 'DROP FUNCTION IF EXISTS ' || fn.signature || ' CASCADE';
            END LOOP;
        END;
        $$
    """)
    for table in ("procrastinate_events", "procrastinate_periodic_defers", "procrastinate_jobs",
                  "procrastinate_workers"):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    for type_name in ("procrastinate_job_to_defer_v1", "procrastinate_job_event_type", "procrastinate_job_status"):
        op.execute(f"DROP TYPE IF EXISTS {type_name} CASCADE")
