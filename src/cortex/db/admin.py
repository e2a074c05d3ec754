"""Server-level administration: a fresh database for benchmarks and tools that must not touch yours."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from cortex.db.url import async_url


async def create_database(server_url: str, name: str) -> str:
    """(Re)creates database `name` on `server_url`'s server and returns its URL."""
    engine = create_async_engine(async_url(server_url), isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)
