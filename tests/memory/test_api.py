"""The memory API on real PostgreSQL: contract, ordering, dedupe, isolation, auth and validation."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import select, update

from cortex.db.models import MemoryFact
from cortex.kit.runtime import Runtime
from cortex.memory.component import MemoryComponent
from tests.memory.conftest import save, view
from tests.support import Tenant, create_agent, make_key


async def test_save_and_view_have_the_exact_contract(client: httpx.AsyncClient, tenant: Tenant) -> None:
    saved = await save(client, tenant, "cust-1", "The customer prefers to be contacted in Arabic.",
                       category="preference", confidence=0.8)
    assert set(saved) == {"customer_id", "fact_id", "saved"}
    assert saved["customer_id"] == "cust-1" and saved["saved"] is True
    body = await view(client, tenant, "cust-1")
    assert set(body) == {"customer_id", "company_id", "fact_count", "knowledge_doc_count", "kb_entry_count",
                         "facts", "knowledge_snippets", "kb_entries"}
    assert body["customer_id"] == "cust-1" and body["company_id"] == str(tenant.company_id)
    assert body["fact_count"] == 1
    assert body["facts"] == [{"id": saved["fact_id"], "fact": "The customer prefers to be contacted in Arabic.",
                              "category": "preference", "confidence": 0.8}]


async def test_save_defaults_and_source(client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime) -> None:
    saved = await save(client, tenant, "cust-d", "Has two children.")
    async with runtime.database.session() as session:
        row = await session.get(MemoryFact, uuid.UUID(saved["fact_id"]))
    assert row is not None
    assert (row.category, row.confidence, row.source, row.agent_id) == ("general", 1.0, "manual", None)
    assert row.last_confirmed_at is not None and row.superseded_by is None
    other = await save(client, tenant, "cust-d", "Calls from the office line.", source="crm-import")
    async with runtime.database.session() as session:
        imported = await session.get(MemoryFact, uuid.UUID(other["fact_id"]))
    assert imported is not None and imported.source == "crm-import"


async def test_without_query_facts_come_by_recency_and_confidence(client: httpx.AsyncClient, tenant: Tenant,
                                                                  runtime: Runtime) -> None:
    low = await save(client, tenant, "cust-r", "Owns a bicycle.", confidence=0.3)
    high = await save(client, tenant, "cust-r", "Lives in Riyadh.", confidence=0.9)
    mid = await save(client, tenant, "cust-r", "Works night shifts.", confidence=0.6)
    ids = [f["id"] for f in (await view(client, tenant, "cust-r"))["facts"]]
    assert ids == [high["fact_id"], mid["fact_id"], low["fact_id"]]
    async with runtime.database.session() as session:  # the confident fact was last confirmed long ago
        await session.execute(update(MemoryFact).where(MemoryFact.id == uuid.UUID(high["fact_id"]))
                              .values(last_confirmed_at=MemoryFact.last_confirmed_at - timedelta(days=400)))
    ids = [f["id"] for f in (await view(client, tenant, "cust-r"))["facts"]]
    assert ids == [mid["fact_id"], low["fact_id"], high["fact_id"]]


async def test_with_query_facts_come_by_relevance(client: httpx.AsyncClient, tenant: Tenant) -> None:
    address = await save(client, tenant, "cust-q", "The customer's home address is 12 Palm Street, Jeddah.")
    language = await save(client, tenant, "cust-q", "The customer prefers to speak Arabic.")
    pet = await save(client, tenant, "cust-q", "The customer has a dog named Max.")
    order = await save(client, tenant, "cust-q", "Order ORD-5521 was a blue kettle.")
    cases = {"Where will you deliver my parcel? Do you have my address?": address,
             "Which language should you use with me?": language,
             "Is my puppy allowed in the store?": pet,
             "What was in ORD-5521?": order}
    for query, expected in cases.items():
        facts = (await view(client, tenant, "cust-q", query))["facts"]
        assert facts[0]["id"] == expected["fact_id"], (query, facts)
        assert len(facts) == 4


async def test_with_query_the_view_leads_with_what_recall_would_hand_the_prompt(
        client: httpx.AsyncClient, tenant: Tenant, memory: MemoryComponent) -> None:
    facts = [("The customer's phone number is +966 55 123 4567.", "context"),
             ("The customer prefers to be contacted in the evenings.", "preference"),
             ("The customer prefers replies in Arabic.", "preference"),
             ("Visited the Riyadh store on 3 May 2025 to look at a kettle.", "history"),
             ("The customer has a dog named Max.", "context")]
    for text, category in facts:
        await save(client, tenant, "cust-v", text, category=category)
    query = "Which number will you call me on?"
    recalled = await memory.recall(company_id=tenant.company_id, agent_id=uuid.uuid4(), customer_id="cust-v",
                                   query=query, token_budget=10_000)
    listed = (await view(client, tenant, "cust-v", query))["facts"]
    assert len(listed) == len(facts) and len(recalled) < len(facts)
    assert [f["id"] for f in listed[:len(recalled)]] == [str(f.id) for f in recalled]
    assert listed[0]["fact"].startswith("The customer's phone number")


async def test_a_repeated_fact_is_not_duplicated(client: httpx.AsyncClient, tenant: Tenant) -> None:
    first = await save(client, tenant, "cust-dup", "The customer's phone number is +966 55 123 4567.")
    again = await save(client, tenant, "cust-dup", "the customer's phone number is +966 55 123 4567")
    assert again == {"customer_id": "cust-dup", "fact_id": first["fact_id"], "saved": False}
    paraphrase = await save(client, tenant, "cust-dup", "Customer's phone number: +966 55 123 4567.")
    assert paraphrase["saved"] is False and paraphrase["fact_id"] == first["fact_id"]
    other_number = await save(client, tenant, "cust-dup", "The customer's phone number is +966 55 999 0000.")
    assert other_number["saved"] is True  # other digits: another fact, never merged
    assert (await view(client, tenant, "cust-dup"))["fact_count"] == 2


async def test_a_manual_save_with_a_subject_supersedes_the_old_value(client: httpx.AsyncClient, tenant: Tenant,
                                                                    runtime: Runtime) -> None:
    old = await save(client, tenant, "cust-s", "The customer's home address is 12 Palm Street, Jeddah.",
                     subject="Home address", value="12 Palm Street, Jeddah", category="context")
    unrelated = await save(client, tenant, "cust-s", "The customer prefers Arabic.", category="preference")
    same = await save(client, tenant, "cust-s", "Customer lives at 12 Palm Street, Jeddah.",
                      subject="home_address", value="12 palm street, jeddah")
    assert same == {"customer_id": "cust-s", "fact_id": old["fact_id"], "saved": False}
    new = await save(client, tenant, "cust-s", "The customer's home address is now 4 Olaya Road, Riyadh.",
                     subject="home_address", value="4 Olaya Road, Riyadh", category="context")
    assert new["saved"] is True and new["fact_id"] != old["fact_id"]
    async with runtime.database.session() as session:
        row = await session.get(MemoryFact, uuid.UUID(old["fact_id"]))
        assert row is not None and row.superseded_by == uuid.UUID(new["fact_id"]) and row.superseded_at is not None
    listed = {f["id"] for f in (await view(client, tenant, "cust-s", "Where do I live?"))["facts"]}
    assert listed == {new["fact_id"], unrelated["fact_id"]}
    # Without a value the fact's own text is the value: a different sentence is a new value.
    later = await save(client, tenant, "cust-s", "The customer moved to 9 Corniche Road, Dammam.",
                       subject="home_address")
    assert later["saved"] is True
    listed = {f["id"] for f in (await view(client, tenant, "cust-s"))["facts"]}
    assert listed == {later["fact_id"], unrelated["fact_id"]}
    for bad in ({"subject": ""}, {"subject": "!!"}, {"value": ""}):
        response = await client.post("/v1/memory/cust-s/save", headers=tenant.headers, json={
            "company_id": str(tenant.company_id), "fact": "Some fact.", **bad})
        assert response.status_code == 422 and response.json()["detail"][0]["loc"][-1] in bad


async def test_delete_fact(client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant) -> None:
    saved = await save(client, tenant, "cust-x", "Allergic to peanuts.")
    foreign = await client.delete(f"/v1/memory/fact/{saved['fact_id']}", headers=other_tenant.headers)
    assert foreign.status_code == 404
    response = await client.delete(f"/v1/memory/fact/{saved['fact_id']}", headers=tenant.headers)
    assert response.status_code == 200
    assert response.json() == {"fact_id": saved["fact_id"], "deleted": True}
    assert (await view(client, tenant, "cust-x"))["facts"] == []
    again = await client.delete(f"/v1/memory/fact/{saved['fact_id']}", headers=tenant.headers)
    assert again.status_code == 404
    unknown = await client.delete(f"/v1/memory/fact/{uuid.uuid4()}", headers=tenant.headers)
    assert unknown.status_code == 404


async def test_companies_never_share_facts_even_for_the_same_customer_id(
        client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant) -> None:
    mine = await save(client, tenant, "shared-id", "Prefers e-mail over phone calls.")
    theirs = await save(client, other_tenant, "shared-id", "Prefers phone calls over e-mail.")
    mine_now = (await view(client, tenant, "shared-id", "how to contact me"))["facts"]
    assert [f["id"] for f in mine_now] == [mine["fact_id"]]
    assert [f["id"] for f in (await view(client, other_tenant, "shared-id"))["facts"]] == [theirs["fact_id"]]
    # Another company's company_id is unknown to this key, with or without facts there.
    response = await client.post("/v1/memory/shared-id", headers=tenant.headers,
                                 json={"company_id": str(other_tenant.company_id)})
    assert response.status_code == 404 and "Prefers" not in response.text
    response = await client.post("/v1/memory/shared-id/save", headers=tenant.headers,
                                 json={"company_id": str(other_tenant.company_id), "fact": "x"})
    assert response.status_code == 404
    response = await client.delete(f"/v1/memory/shared-id?company_id={other_tenant.company_id}",
                                   headers=tenant.headers)
    assert response.status_code == 404
    assert (await view(client, other_tenant, "shared-id"))["fact_count"] == 1


async def test_agent_scoped_fact_needs_an_agent_of_the_company(client: httpx.AsyncClient, tenant: Tenant,
                                                               other_tenant: Tenant, runtime: Runtime) -> None:
    agent = await create_agent(client, tenant)
    foreign_agent = await create_agent(client, other_tenant)
    response = await client.post("/v1/memory/cust-a/save", headers=tenant.headers, json={
        "company_id": str(tenant.company_id), "fact": "Is a VIP for the sales team.", "agent_id": foreign_agent["id"]})
    assert response.status_code == 404
    saved = await save(client, tenant, "cust-a", "Is a VIP for the sales team.", agent_id=agent["id"])
    async with runtime.database.session() as session:
        row = await session.scalar(select(MemoryFact).where(MemoryFact.id == uuid.UUID(saved["fact_id"])))
    assert row is not None and row.agent_id == uuid.UUID(agent["id"])


async def test_auth_and_validation(client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime) -> None:
    body = {"company_id": str(tenant.company_id), "fact": "Likes tea."}
    assert (await client.post("/v1/memory/c/save", json=body)).status_code == 401
    assert (await client.post("/v1/memory/c", json={"company_id": str(tenant.company_id)})).status_code == 401
    assert (await client.delete(f"/v1/memory/fact/{uuid.uuid4()}")).status_code == 401
    assert (await client.delete(f"/v1/memory/c?company_id={tenant.company_id}")).status_code == 401
    chat_only = {"Authorization": f"Bearer {await make_key(runtime, tenant.company_id, ['chat'])}"}
    assert (await client.post("/v1/memory/c/save", json=body, headers=chat_only)).status_code == 403
    assert (await client.post("/v1/memory/c", json={"company_id": str(tenant.company_id)},
                              headers=chat_only)).status_code == 403
    assert (await client.delete(f"/v1/memory/fact/{uuid.uuid4()}", headers=chat_only)).status_code == 403
    assert (await client.delete(f"/v1/memory/c?company_id={tenant.company_id}", headers=chat_only)).status_code == 403
    memory_key = {"Authorization": f"Bearer {await make_key(runtime, tenant.company_id, ['memory'])}"}
    assert (await client.post("/v1/memory/c/save", json=body, headers=memory_key)).status_code == 200

    bad = [({**body, "category": "gossip"}, "category"), ({**body, "confidence": 1.5}, "confidence"),
           ({**body, "confidence": -0.1}, "confidence"), ({**body, "fact": ""}, "fact"),
           ({"fact": "x"}, "company_id"), ({**body, "company_id": "not-a-uuid"}, "company_id"),
           ({**body, "agent_id": "nope"}, "agent_id"), ({**body, "surprise": 1}, "surprise"),
           ({**body, "fact": "x" * 2001}, "fact")]
    for payload, field in bad:
        response = await client.post("/v1/memory/c/save", json=payload, headers=tenant.headers)
        assert response.status_code == 422, (payload, response.text)
        assert field in [str(part) for e in response.json()["detail"] for part in e["loc"]], (field, response.text)
    response = await client.post("/v1/memory/c/save", content=b"{not json", headers=tenant.headers)
    assert response.status_code == 422
    response = await client.post("/v1/memory/" + "c" * 201, json={"company_id": str(tenant.company_id)},
                                 headers=tenant.headers)
    assert response.status_code == 422
    response = await client.post("/v1/memory/c", json={"company_id": str(tenant.company_id), "query": ""},
                                 headers=tenant.headers)
    assert response.status_code == 422
    assert (await client.delete("/v1/memory/fact/nope", headers=tenant.headers)).status_code == 422
    assert (await client.delete("/v1/memory/c", headers=tenant.headers)).status_code == 422
    assert (await client.delete("/v1/memory/c?company_id=zzz", headers=tenant.headers)).status_code == 422


async def test_customer_documents_are_the_sources_tagged_with_the_customer(client: httpx.AsyncClient,
                                                                           tenant: Tenant,
                                                                           other_tenant: Tenant) -> None:
    created = {}
    for owner, name, customer in ((tenant, "Contract of cust-k", "cust-k"), (tenant, "Price list", None),
                                  (other_tenant, "Their cust-k file", "cust-k")):
        response = await client.post("/v1/knowledge/sources", headers=owner.headers, json={
            "name": name, "metadata": {"customer_id": customer} if customer else {}})
        assert response.status_code == 201, response.text
        created[name] = response.json()["id"]
    body = await view(client, tenant, "cust-k")
    assert body["knowledge_doc_count"] == 1 and body["kb_entry_count"] == 0 and body["kb_entries"] == []
    assert [d["name"] for d in body["knowledge_snippets"]] == ["Contract of cust-k"]
    assert set(body["knowledge_snippets"][0]) == {"source_id", "name", "description", "source_type", "status"}
    # The entries are the indexed chunks of the customer's documents, never of other sources.
    await upload(client, tenant, created["Contract of cust-k"], "contract.md", CONTRACT)
    await upload(client, tenant, created["Price list"], "prices.md", "# Prices\n\nThe router costs 40 dollars.\n")
    await upload(client, other_tenant, created["Their cust-k file"], "theirs.md",
                 "# Router\n\nTheir customer rents a router too.\n")
    body = await view(client, tenant, "cust-k")
    assert body["kb_entry_count"] == 3 and len(body["kb_entries"]) == 3
    assert [e["heading_path"][-1] for e in body["kb_entries"]] == ["Term", "Equipment", "Cancellation"]
    assert all(e["source_id"] == created["Contract of cust-k"] and e["score"] is None for e in body["kb_entries"])
    assert set(body["kb_entries"][0]) == {"chunk_id", "source_id", "document_ref", "heading_path", "text", "score"}
    ranked = (await view(client, tenant, "cust-k", "Can I give back the rented router?"))["kb_entries"]
    assert ranked[0]["heading_path"][-1] == "Equipment" and ranked[0]["score"] > 0
    assert {e["source_id"] for e in ranked} == {created["Contract of cust-k"]}
    assert (await view(client, other_tenant, "cust-k"))["kb_entry_count"] == 1


CONTRACT = """# Service contract

## Term
The contract runs for 24 months from 1 March 2026 and renews monthly afterwards.

## Equipment
The customer rents one fibre router; it must be returned within 30 days after the contract ends.

## Cancellation
Cancelling before the end of the term costs 50 dollars per remaining month.
"""


async def upload(client: httpx.AsyncClient, tenant: Tenant, source_id: str, name: str, text: str) -> None:
    response = await client.post(f"/v1/knowledge/sources/{source_id}/files", headers=tenant.headers,
                                 files={"file": (name, text.encode(), "text/markdown")}, data={"user_id": "u-1"})
    assert response.status_code == 200 and response.json()["status"] == "completed", response.text
