"""Migration 0009 keys conversations by (company_id, id) and keeps every message linked to its conversation."""

from __future__ import annotations

import uuid

from cortex.db.migrate import upgrade
from tests.scratch_db import run_sql, scratch_database

_MESSAGE = ("INSERT INTO messages (id, company_id, conversation_id, agent_id, customer_id, role, content, status, "
            "channel, tokens_input, tokens_output, cost_usd, step_timings, context_tokens, actions_executed, "
            "tool_calls, tool_rounds, cached, metadata, created_at) VALUES (gen_random_uuid(), :company, "
            ":conversation, :agent, :customer, :role, :content, 'ok', 'web', 0, 0, 0, '{}', '{}', '[]', '[]', 0, "
            "false, '{}', now() + make_interval(secs => :at))")


def _company(url: str, name: str) -> tuple[uuid.UUID, uuid.UUID]:
    company, agent = uuid.uuid4(), uuid.uuid4()
    run_sql(url, "INSERT INTO companies (id, name, created_at, updated_at) VALUES (:id, :name, now(), now())",
            {"id": company, "name": name})
    run_sql(url, "INSERT INTO agents (id, company_id, name, system_prompt, personality, dialect, faqs, scenarios, "
                 "workflow_faqs, settings, config_version, knowledge_version, created_at, updated_at) VALUES (:id, "
                 ":company, 'Agent', '', '{}', '{}', '[]', '[]', '[]', '{}', 1, 1, now(), now())",
            {"id": agent, "company": company})
    return company, agent


def _message(url: str, company: uuid.UUID, conversation: uuid.UUID, agent: uuid.UUID, customer: str, role: str,
             content: str, at: int) -> None:
    run_sql(url, _MESSAGE, {"company": company, "conversation": conversation, "agent": agent, "customer": customer,
                            "role": role, "content": content, "at": at})


def test_rows_survive_and_a_message_filed_under_another_companys_id_gets_its_own(pg_server_url: str) -> None:
    with scratch_database(pg_server_url, "cortex_conv_key") as url:
        upgrade(url, "0008_job_leases")
        (first, first_agent), (second, second_agent) = _company(url, "First"), _company(url, "Second")
        shared, own, lost = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        for conversation, company, agent in ((shared, first, first_agent), (own, second, second_agent),
                                             (lost, first, first_agent)):
            run_sql(url, "INSERT INTO conversations (id, company_id, agent_id, customer_id, channel, metadata, "
                         "created_at, updated_at) VALUES (:id, :company, :agent, 'cust', 'web', '{}', now(), now())",
                    {"id": conversation, "company": company, "agent": agent})
        _message(url, first, shared, first_agent, "cust", "customer", "first asks", 0)
        _message(url, first, shared, first_agent, "cust", "assistant", "first answered", 1)
        _message(url, second, own, second_agent, "cust", "customer", "second asks", 2)
        # The second company's first message raced the first company's on the same id and was filed there.
        _message(url, second, shared, second_agent, "late", "customer", "second raced", 3)
        _message(url, second, shared, second_agent, "late", "assistant", "second raced, answered", 4)
        # Filed there too, but by an agent since deleted: its own conversation would have gone with the agent.
        _message(url, second, lost, uuid.uuid4(), "gone", "customer", "agent deleted", 5)

        upgrade(url)

        conversations = run_sql(url, "SELECT company_id, id, agent_id, customer_id FROM conversations "
                                     "ORDER BY company_id, id")
        assert sorted(conversations) == sorted([
            (first, shared, first_agent, "cust"), (first, lost, first_agent, "cust"),
            (second, own, second_agent, "cust"), (second, shared, second_agent, "late")])
        linked = run_sql(url, "SELECT m.company_id, m.conversation_id, m.content FROM messages m JOIN conversations c "
                              "ON c.company_id = m.company_id AND c.id = m.conversation_id")
        assert sorted(linked) == sorted([(first, shared, "first asks"), (first, shared, "first answered"),
                                         (second, own, "second asks"), (second, shared, "second raced"),
                                         (second, shared, "second raced, answered")])
        assert run_sql(url, "SELECT count(*) FROM messages") == [(5,)]
        # The new key holds: one company's conversation going takes its messages only.
        run_sql(url, "DELETE FROM conversations WHERE company_id = :c AND id = :id", {"c": first, "id": shared})
        assert sorted(run_sql(url, "SELECT content FROM messages WHERE conversation_id = :id", {"id": shared})) == [
            ("second raced",), ("second raced, answered",)]
        constraints = dict(run_sql(url, "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                                        "WHERE conname IN ('conversations_pkey', 'messages_conversation_fkey')"))
        assert constraints["conversations_pkey"] == "PRIMARY KEY (company_id, id)"
        assert "(company_id, conversation_id) REFERENCES conversations(company_id, id) ON DELETE CASCADE" in \
            constraints["messages_conversation_fkey"]
