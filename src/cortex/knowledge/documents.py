"""The documents of a knowledge source: one file, one URL, or an agent's structured documents each.

A document is known by its source, kind and name (file name or URL): ingesting that name again
replaces this document's chunks and no other's. Every query here is scoped to a company.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.agents import service as agents
from cortex.agents.config_cache import AgentConfigCache
from cortex.db.models import KnowledgeChunkSet, KnowledgeDocument, KnowledgeSource
from cortex.kit.errors import NotFound
from cortex.kit.pagination import Listing, Page, PageParams, paginate
from cortex.kit.runtime import Runtime
from cortex.knowledge.schemas import DocumentStatus, KnowledgeDocumentPublic

# The one document that holds an agent's FAQs, workflow FAQs and scenarios in its 'documents' source
# (migration 0012 names backfilled documents the same way).
AGENT_DOCUMENTS_NAME = "agent documents"
_MAX_ERROR = 2_000


def to_public(document: KnowledgeDocument) -> KnowledgeDocumentPublic:
    return KnowledgeDocumentPublic(
        id=document.id, source_id=document.source_id, kind=document.kind,
        name=document.name, content_sha256=document.content_sha256, embedding_model=document.embedding_model,
        status=document.status,
        error=document.error, chunk_count=document.chunk_count, created_at=document.created_at,
        updated_at=document.updated_at)


async def claim_document(runtime: Runtime, *, company_id: uuid.UUID, source_id: uuid.UUID, kind: str, name: str,
                         params: dict[str, Any]) -> uuid.UUID:
    """The document named `name` in the source, created if new, queued for ingestion; its id.

    One statement (INSERT ... ON CONFLICT), so that two ingestions of one new name share a document."""
    statement = insert(KnowledgeDocument).values(
        id=uuid.uuid4(), company_id=company_id, source_id=source_id, kind=kind, name=name, status="queued",
        chunk_count=0, params=params)
    upsert = statement.on_conflict_do_update(
        index_elements=[KnowledgeDocument.source_id, KnowledgeDocument.kind, func.md5(KnowledgeDocument.name)],
        set_={"params": statement.excluded.params, "status": "queued", "error": None, "updated_at": func.now()},
    ).returning(KnowledgeDocument.id)
    async with runtime.database.session() as session:
        return uuid.UUID(str((await session.execute(upsert)).scalar_one()))


async def document_of(runtime: Runtime, company_id: uuid.UUID, document_id: uuid.UUID) -> KnowledgeDocument:
    async with runtime.database.session() as session:
        return await get_document(session, company_id, document_id)


async def get_document(session: AsyncSession, company_id: uuid.UUID, document_id: uuid.UUID) -> KnowledgeDocument:
    document = await session.scalar(select(KnowledgeDocument).where(KnowledgeDocument.id == document_id,
                                                                    KnowledgeDocument.company_id == company_id))
    if document is None:
        raise NotFound("knowledge document not found")
    return document


async def set_status(runtime: Runtime, document_id: uuid.UUID, status: DocumentStatus,
                     error: str | None = None) -> None:
    async with runtime.database.session() as session:
        await session.execute(update(KnowledgeDocument).where(KnowledgeDocument.id == document_id).values(
            status=status, error=error[:_MAX_ERROR] if error else None, updated_at=func.now()))


async def mark_failed(session: AsyncSession, document_id: uuid.UUID, error: str) -> KnowledgeDocument | None:
    """The document, now `failed` with `error`; None when it was deleted meanwhile."""
    document = await session.scalar(select(KnowledgeDocument).where(KnowledgeDocument.id == document_id))
    if document is not None:
        document.status, document.error, document.updated_at = "failed", error[:_MAX_ERROR], func.now()
        await session.flush()
    return document


# Ascending by default: a source's documents read in the order they were added.
DOCUMENT_LISTING = Listing(sort={"created_at": [KnowledgeDocument.created_at],
                                 "updated_at": [KnowledgeDocument.updated_at], "name": [KnowledgeDocument.name]},
                           created=KnowledgeDocument.created_at, updated=KnowledgeDocument.updated_at,
                           tiebreak=[KnowledgeDocument.id], default_sort="created_at:asc")


async def list_documents(session: AsyncSession, company_id: uuid.UUID, source_id: uuid.UUID, params: PageParams,
                         status: DocumentStatus | None = None) -> Page[KnowledgeDocumentPublic]:
    source = await session.scalar(select(KnowledgeSource.id).where(KnowledgeSource.id == source_id,
                                                                   KnowledgeSource.company_id == company_id))
    if source is None:
        raise NotFound("knowledge source not found")
    statement = select(KnowledgeDocument).where(KnowledgeDocument.company_id == company_id,
                                                KnowledgeDocument.source_id == source_id)
    if status is not None:
        statement = statement.where(KnowledgeDocument.status == status)
    return await paginate(session, statement, params, to_public, listing=DOCUMENT_LISTING)


async def delete_document(session: AsyncSession, cache: AgentConfigCache, company_id: uuid.UUID,
                          document_id: uuid.UUID) -> None:
    """Removes the document and its chunks only (its chunk sets cascade); linked agents see it at once."""
    document = await get_document(session, company_id, document_id)
    source_id = document.source_id
    # The source row first, as a swap of its documents takes it (cortex.knowledge.ingestion).
    await session.execute(select(KnowledgeSource.id).where(KnowledgeSource.id == source_id).with_for_update())
    await session.delete(document)
    await session.flush()
    live = await session.scalar(select(KnowledgeChunkSet.id).where(
        KnowledgeChunkSet.source_id == source_id, KnowledgeChunkSet.status == "active").limit(1))
    if live is None:
        await session.execute(update(KnowledgeSource).where(KnowledgeSource.id == source_id).values(status="empty"))
    linked = await agents.agents_linked_to(session, company_id, source_id=source_id)
    await agents.bump_versions(session, cache, company_id, linked, knowledge=True)
