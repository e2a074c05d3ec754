"""Migration 0007 fills in the token count and concepts of facts stored before 0006 added them."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from cortex.db.migrate import upgrade
from cortex.db.url import async_url
from cortex.memory.concepts import fact_concepts
from cortex.memory.repository import count_tokens


def _run(url: str, statement: str, params: dict[str, Any] | None = None, autocommit: bool = False) -> list[Any]:
    async def run() -> list[Any]:
        engine = create_async_engine(async_url(url), isolation_level="AUTOCOMMIT" if autocommit else None)
        async with engine.begin() as conn:
            result = await conn.execute(text(statement), params or {})
            rows = list(result.all()) if result.returns_rows else []
        await engine.dispose()
        return rows

    return asyncio.run(run())


def test_old_facts_get_their_token_count_and_concepts(pg_server_url: str) -> None:
    name = f"cortex_backfill_{uuid.uuid4().hex[:10]}"
    _run(pg_server_url, f'CREATE DATABASE "{name}"', autocommit=True)
    url = make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url, "0006_memory_tuning")
        company = uuid.uuid4()
        _run(url, "INSERT INTO companies (id, name, created_at, updated_at) VALUES (:id, 'Old', now(), now())",
             {"id": company})
        facts = [("The customer's home address is 12 Palm Street, Jeddah.", "home_address"),
                 ("Prefers to be called in the evenings.", None)]
        for fact, subject in facts:
            _run(url, "INSERT INTO memory_facts (id, company_id, customer_id, fact, category, confidence, subject, "
                      "embedding, source, last_confirmed_at, created_at, updated_at) VALUES (gen_random_uuid(), "
                      ":c, 'cust-old', :f, 'context', 1.0, :s, CAST(:e AS halfvec), 'manual', now(), now(), now())",
                 {"c": company, "f": fact, "s": subject, "e": "[" + ",".join(["0.1"] * 384) + "]"})
        assert _run(url, "SELECT count(*) FROM memory_facts WHERE token_count IS NULL AND concepts IS NULL") == [(2,)]
        upgrade(url)
        rows = dict(_run(url, "SELECT fact, ARRAY[token_count::text] || concepts FROM memory_facts"))
        for fact, subject in facts:
            assert rows[fact] == [str(count_tokens(fact)), *fact_concepts(subject, fact)]
        assert rows[facts[0][0]][1:] == ["address"] and "contact_time" in rows[facts[1][0]]
    finally:
        _run(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', autocommit=True)
