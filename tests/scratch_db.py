"""A database of its own on the test server, for tests that migrate from nothing (synchronous: Alembic
runs its own event loop)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from cortex.db.url import async_url


def run_sql(url: str, statement: str, params: dict[str, Any] | None = None, *,
            autocommit: bool = False) -> list[Any]:
    """One statement in its own transaction; its rows, if it returns any."""
    async def run() -> list[Any]:
        engine = create_async_engine(async_url(url), isolation_level="AUTOCOMMIT" if autocommit else None)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(text(statement), params or {})
                return list(result.all()) if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(run())


@contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """An empty database on the server, dropped afterwards; yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    run_sql(server_url, f'CREATE DATABASE "{name}"', autocommit=True)
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        run_sql(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', autocommit=True)
