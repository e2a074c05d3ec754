"""Migrations against a fresh database on the real server: processes that start together migrate once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from cortex.db.url import async_url


def _scalar(url: str, statement: str, autocommit: bool = False) -> object:
    async def run() -> object:
        engine = create_async_engine(async_url(url), isolation_level="AUTOCOMMIT" if autocommit else None)
        async with engine.begin() as conn:
            result = await conn.execute(text(statement))
            value = result.scalar() if result.returns_rows else None
        await engine.dispose()
        return value

    return asyncio.run(run())


def test_workers_migrating_one_fresh_database_at_once_all_succeed(pg_server_url: str) -> None:
    name = f"cortex_race_{uuid.uuid4().hex[:10]}"
    _scalar(pg_server_url, f'CREATE DATABASE "{name}"', autocommit=True)
    url = make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
    try:
        # Four `uvicorn --workers 4` processes at start-up, or four replicas of a deploy (processes:
        # Alembic's context is process-global, so threads would not be a fair stand-in).
        command = [sys.executable, "-c", "import sys; from cortex.db.migrate import upgrade; upgrade(sys.argv[1])", url]
        workers = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(4)]
        for worker in workers:
            _, errors = worker.communicate(timeout=120)
            assert worker.returncode == 0, errors[-2000:]
        assert _scalar(url, "SELECT count(*) FROM alembic_version") == 1
        assert _scalar(url, "SELECT count(*) FROM memory_facts") == 0
    finally:
        _scalar(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', autocommit=True)
