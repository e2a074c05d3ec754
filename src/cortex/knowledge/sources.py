"""Knowledge sources: the named collections of documents an agent can draw on."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.agents import service as agents
from cortex.agents.config_cache import AgentConfigCache
from cortex.db.models import KnowledgeSource
from cortex.kit.errors import NotFound
from cortex.kit.pagination import Listing, Page, PageParams, paginate
from cortex.knowledge.schemas import KnowledgeSourceCreate, KnowledgeSourcePublic, KnowledgeSourceUpdate


def to_public(source: KnowledgeSource) -> KnowledgeSourcePublic:
    return KnowledgeSourcePublic(
        id=source.id, company_id=source.company_id, name=source.name, description=source.description,
        source_type=source.source_type, embedding_model=source.embedding_model, status=source.status,
        metadata=source.metadata_, created_at=source.created_at, updated_at=source.updated_at,
    )


async def get_source(session: AsyncSession, company_id: uuid.UUID, source_id: uuid.UUID) -> KnowledgeSource:
    source = await session.scalar(select(KnowledgeSource).where(KnowledgeSource.id == source_id,
                                                                KnowledgeSource.company_id == company_id))
    if source is None:
        raise NotFound("knowledge source not found")
    return source


async def create_source(session: AsyncSession, company_id: uuid.UUID,
                        data: KnowledgeSourceCreate) -> KnowledgeSource:
    source = KnowledgeSource(company_id=company_id, name=data.name, description=data.description,
                             source_type=data.source_type, embedding_model=data.embedding_model,
                             metadata_=data.metadata)
    session.add(source)
    await session.flush()
    await session.refresh(source)
    return source


async def update_source(session: AsyncSession, company_id: uuid.UUID, source_id: uuid.UUID,
                        data: KnowledgeSourceUpdate) -> KnowledgeSource:
    source = await get_source(session, company_id, source_id)
    changes = data.model_dump(exclude_unset=True)
    for field, value in changes.items():
        if value is not None:
            setattr(source, "metadata_" if field == "metadata" else field, value)
    await session.flush()
    await session.refresh(source)
    return source


async def delete_source(session: AsyncSession, cache: AgentConfigCache, company_id: uuid.UUID,
                        source_id: uuid.UUID) -> None:
    source = await get_source(session, company_id, source_id)
    linked = await agents.agents_linked_to(session, company_id, source_id=source.id)
    await session.delete(source)
    await session.flush()
    await agents.bump_versions(session, cache, company_id, linked, config=True, knowledge=True)


SOURCE_LISTING = Listing(sort={"created_at": [KnowledgeSource.created_at], "updated_at": [KnowledgeSource.updated_at],
                              "name": [KnowledgeSource.name]},
                         created=KnowledgeSource.created_at, updated=KnowledgeSource.updated_at,
                         tiebreak=[KnowledgeSource.id])


async def list_sources(session: AsyncSession, company_id: uuid.UUID, params: PageParams,
                       status: str | None = None) -> Page[KnowledgeSourcePublic]:
    statement = select(KnowledgeSource).where(KnowledgeSource.company_id == company_id)
    if status is not None:
        statement = statement.where(KnowledgeSource.status == status)
    return await paginate(session, statement, params, to_public, listing=SOURCE_LISTING)
