"""Alembic environment: runs migrations over asyncpg against the URL the caller put in the config."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from cortex.db.models import Base
from cortex.db.url import async_url

config = context.config
target_metadata = Base.metadata


# Workers, replicas and commands that start together against one database migrate one at a time: the
# first applies the revisions, the others wait here and then find nothing left to do.
MIGRATION_LOCK_KEY = 0x636F7274  # "cort"


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


async def _run_async() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "cortex.db.migrate sets sqlalchemy.url"
    engine = create_async_engine(async_url(url), poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `cortex db upgrade`")
asyncio.run(_run_async())
