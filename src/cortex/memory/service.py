"""The memory API's business rules: the customer's memory view, manual saves, deletes, forgetting."""

from __future__ import annotations

import hashlib
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.auth.deps import ApiPrincipal
from cortex.customers.service import find_by_ref
from cortex.db.models import Agent, ApiKey, MemoryAuditRecord
from cortex.events import outbox
from cortex.events import repository as event_repository
from cortex.kit.errors import NotFound
from cortex.kit.pagination import Page, PageParams
from cortex.kit.runtime import Runtime
from cortex.knowledge.service import knowledge_component
from cortex.memory import repository
from cortex.memory.repository import NewFact
from cortex.memory.schemas import (
    CustomerForgotten,
    FactDeleted,
    FactListed,
    FactPublic,
    FactSave,
    FactSaved,
    KbEntry,
    KnowledgeSnippet,
    MemoryPublic,
)
from cortex.pipeline.cache_check import cache_port

# The API's memory view lists at most this many facts, and this many knowledge-base entries.
MAX_LISTED_FACTS = 100
MAX_LISTED_ENTRIES = 20


def customer_ref(company_id: uuid.UUID, customer_id: str) -> str:
    return hashlib.sha256(f"{company_id}:{customer_id}".encode()).hexdigest()


async def customer_facts(session: AsyncSession, company_id: uuid.UUID, ref: str, params: PageParams, *,
                         agent_id: uuid.UUID | None, category: str | None,
                         include_superseded: bool) -> Page[FactListed]:
    """`ref` names a customer profile (Cortex's id or the company's customer_id) or, since memory needs no
    profile, a customer_id that has facts; anything else is unknown."""
    profile = await find_by_ref(session, company_id, ref)
    customer_id = profile.customer_id if profile is not None else ref
    if profile is None and not await repository.has_facts(session, company_id, customer_id):
        raise NotFound("customer not found")
    return await repository.page_facts(session, company_id, customer_id, params, agent_id=agent_id,
                                       category=category, include_superseded=include_superseded)


async def memory_view(session: AsyncSession, runtime: Runtime, company_id: uuid.UUID, customer_id: str,
                      query: str | None) -> MemoryPublic:
    vector = await runtime.embedder.embed_query(query) if query else None
    facts = await repository.list_facts(session, company_id=company_id, customer_id=customer_id,
                                        query_vector=vector, query=query, limit=MAX_LISTED_FACTS)
    documents = await repository.customer_documents(session, company_id, customer_id)
    source_ids = [d.id for d in documents]
    entries = await kb_entries(session, runtime, company_id, source_ids, query)
    return MemoryPublic(
        customer_id=customer_id, company_id=company_id,
        fact_count=await repository.count_active(session, company_id, customer_id),
        knowledge_doc_count=len(documents),
        kb_entry_count=await repository.count_entries(session, company_id, source_ids),
        facts=[FactPublic(id=f.id, fact=f.fact, category=f.category, confidence=f.confidence) for f in facts],
        knowledge_snippets=[KnowledgeSnippet(source_id=d.id, name=d.name, description=d.description,
                                             source_type=d.source_type, status=d.status) for d in documents],
        kb_entries=entries,
    )


async def kb_entries(session: AsyncSession, runtime: Runtime, company_id: uuid.UUID, source_ids: list[uuid.UUID],
                     query: str | None) -> list[KbEntry]:
    """The customer's documents' entries: with a query, the knowledge search's best over those documents
    only (the same hybrid retrieval the Context Engine uses); without, in reading order."""
    if not query:
        rows = await repository.first_entries(session, company_id, source_ids, MAX_LISTED_ENTRIES)
        return [KbEntry(chunk_id=r.id, source_id=r.source_id, document_ref=r.document_ref,
                        heading_path=list(r.heading_path), text=r.text, score=None) for r in rows]
    found = await knowledge_component(runtime).retriever.search(
        company_id=company_id, source_ids=source_ids, query=query, top_k=MAX_LISTED_ENTRIES)
    return [KbEntry(chunk_id=c.chunk_id, source_id=c.source_id, document_ref=c.document_ref,
                    heading_path=list(c.heading_path), text=c.text, score=round(c.score, 6)) for c in found]


async def save_fact(session: AsyncSession, runtime: Runtime, company_id: uuid.UUID, customer_id: str,
                    data: FactSave) -> FactSaved:
    if data.agent_id is not None:
        agent = await session.scalar(select(Agent.id).where(Agent.id == data.agent_id, Agent.company_id == company_id))
        if agent is None:
            raise NotFound("agent not found")
    fact = data.fact.strip()
    subject = repository.normalise_subject(data.subject)
    # The value decides repeat against contradiction; a fact saved without one is its own value.
    value = (data.value or fact).strip() if subject else None
    texts = [fact] + ([repository.subject_words(subject)] if subject else [])
    vectors = await runtime.embedder.embed(texts)
    await repository.lock_customer(session, company_id, customer_id)
    outcome = await repository.store_fact(session, company_id=company_id, customer_id=customer_id, new=NewFact(
        fact=fact, category=data.category, confidence=data.confidence, embedding=vectors[0],
        source=data.source, agent_id=data.agent_id, subject=subject, value=value,
        subject_embedding=vectors[1] if subject else None))
    return FactSaved(customer_id=customer_id, fact_id=outcome.fact_id, saved=outcome.action == "created")


async def delete_fact(session: AsyncSession, company_id: uuid.UUID, fact_id: uuid.UUID) -> FactDeleted:
    row = await repository.get_fact(session, company_id, fact_id)
    if row is None:
        raise NotFound("fact not found")
    await repository.delete_fact(session, row)
    return FactDeleted(fact_id=fact_id, deleted=True)


async def forget_customer(session: AsyncSession, runtime: Runtime, principal: ApiPrincipal,
                          customer_id: str) -> CustomerForgotten:
    actor_name = await session.scalar(select(ApiKey.name).where(ApiKey.id == principal.key_id))
    return await forget_customer_by(session, runtime, principal.company_id, customer_id,
                                    actor_key_id=principal.key_id, actor_name=actor_name)


async def forget_customer_by(session: AsyncSession, runtime: Runtime, company_id: uuid.UUID, customer_id: str, *,
                             actor_key_id: uuid.UUID | None, actor_name: str | None) -> CustomerForgotten:
    """Forgets the customer; the audit record names who asked (an API key, or a portal user by name)."""
    await repository.lock_customer(session, company_id, customer_id)
    counts = await repository.forget(session, company_id, customer_id)
    cached = await cache_port(runtime).forget_customer(company_id=company_id, customer_id=customer_id)
    record = MemoryAuditRecord(
        company_id=company_id, action="forget_customer", customer_ref=customer_ref(company_id, customer_id),
        actor_key_id=actor_key_id, actor_name=actor_name,
        counts={"facts": counts.facts, "messages": counts.messages, "conversations": counts.conversations,
                "cache_entries": cached})
    session.add(record)
    await session.flush()
    # The customer's own events go too (message.* ones hold their words); the event of the forgetting names
    # the customer by the audit log's one-way reference only.
    await event_repository.forget_customer(session, company_id, customer_id)
    await outbox.record(session, company_id, "customer.forgotten", {
        "customer_ref": record.customer_ref, "audit_id": record.id, "facts_deleted": counts.facts,
        "messages_deleted": counts.messages, "conversations_deleted": counts.conversations})
    return CustomerForgotten(customer_id=customer_id, company_id=company_id, facts_deleted=counts.facts,
                             messages_deleted=counts.messages, conversations_deleted=counts.conversations,
                             cache_entries_deleted=cached, audit_id=record.id)
