"""Migration 0007 fills in the token count and concepts of facts stored before 0006 added them."""

from __future__ import annotations

import uuid

from cortex.db.migrate import upgrade
from cortex.memory.concepts import fact_concepts
from cortex.memory.repository import count_tokens
from tests.scratch_db import run_sql, scratch_database


def test_old_facts_get_their_token_count_and_concepts(pg_server_url: str) -> None:
    with scratch_database(pg_server_url, "cortex_backfill") as url:
        upgrade(url, "0006_memory_tuning")
        company = uuid.uuid4()
        run_sql(url, "INSERT INTO companies (id, name, created_at, updated_at) VALUES (:id, 'Old', now(), now())",
                {"id": company})
        facts = [("The customer's home address is 12 Palm Street, Jeddah.", "home_address"),
                 ("Prefers to be called in the evenings.", None)]
        for fact, subject in facts:
            run_sql(url, "INSERT INTO memory_facts (id, company_id, customer_id, fact, category, confidence, subject, "
                         "embedding, source, last_confirmed_at, created_at, updated_at) VALUES (gen_random_uuid(), "
                         ":c, 'cust-old', :f, 'context', 1.0, :s, CAST(:e AS halfvec), 'manual', now(), now(), now())",
                    {"c": company, "f": fact, "s": subject, "e": "[" + ",".join(["0.1"] * 384) + "]"})
        unfilled = "SELECT count(*) FROM memory_facts WHERE token_count IS NULL AND concepts IS NULL"
        assert run_sql(url, unfilled) == [(2,)]
        upgrade(url)
        rows = dict(run_sql(url, "SELECT fact, ARRAY[token_count::text] || concepts FROM memory_facts"))
        for fact, subject in facts:
            assert rows[fact] == [str(count_tokens(fact)), *fact_concepts(subject, fact)]
        assert rows[facts[0][0]][1:] == ["address"] and "contact_time" in rows[facts[1][0]]
