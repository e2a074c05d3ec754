"""Knowledge sources (CRUD). Ingestion and search endpoints live beside them."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from cortex.auth.deps import KnowledgeAuth
from cortex.kit.deps import RuntimeDep, SessionDep
from cortex.kit.pagination import Page, PageQuery
from cortex.knowledge import sources
from cortex.knowledge.schemas import KnowledgeSourceCreate, KnowledgeSourcePublic, KnowledgeSourceUpdate

sources_router = APIRouter(prefix="/v1/knowledge/sources", tags=["knowledge"])


@sources_router.post("", response_model=KnowledgeSourcePublic, status_code=status.HTTP_201_CREATED)
async def create_source(body: KnowledgeSourceCreate, principal: KnowledgeAuth,
                        session: SessionDep) -> KnowledgeSourcePublic:
    return sources.to_public(await sources.create_source(session, principal.company_id, body))


@sources_router.get("", response_model=Page[KnowledgeSourcePublic])
async def list_sources(principal: KnowledgeAuth, session: SessionDep,
                       page: PageQuery) -> Page[KnowledgeSourcePublic]:
    return await sources.list_sources(session, principal.company_id, page)


@sources_router.get("/{source_id}", response_model=KnowledgeSourcePublic)
async def get_source(source_id: uuid.UUID, principal: KnowledgeAuth, session: SessionDep) -> KnowledgeSourcePublic:
    return sources.to_public(await sources.get_source(session, principal.company_id, source_id))


@sources_router.patch("/{source_id}", response_model=KnowledgeSourcePublic)
async def update_source(source_id: uuid.UUID, body: KnowledgeSourceUpdate, principal: KnowledgeAuth,
                        session: SessionDep) -> KnowledgeSourcePublic:
    return sources.to_public(await sources.update_source(session, principal.company_id, source_id, body))


@sources_router.delete("/{source_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_source(source_id: uuid.UUID, principal: KnowledgeAuth, session: SessionDep,
                        runtime: RuntimeDep) -> Response:
    await sources.delete_source(session, runtime.config_cache, principal.company_id, source_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
