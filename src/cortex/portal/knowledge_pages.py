"""Knowledge: sources, their documents with status (upload, add a URL, retry, delete) and a search box."""

from __future__ import annotations

import uuid
from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from pydantic import HttpUrl, TypeAdapter, ValidationError
from starlette.responses import RedirectResponse, Response

from cortex.agents.schemas import AgentConfig
from cortex.agents.service import build_config
from cortex.kit.deps import RuntimeDep, SessionDep
from cortex.kit.errors import InvalidInput
from cortex.kit.pagination import PageParams
from cortex.knowledge import documents, sources
from cortex.knowledge.schemas import KnowledgeSourceCreate
from cortex.knowledge.service import knowledge_component, source_of
from cortex.knowledge.uploads import save_upload
from cortex.portal import queries
from cortex.portal.rendering import page
from cortex.portal.web_session import PREFIX, ViewerDep

router = APIRouter(prefix=PREFIX + "/knowledge", include_in_schema=False)

PAGE_SIZE = 25
UPLOAD_PATH = PREFIX + "/knowledge/sources/{source_id}/files"
_URL = TypeAdapter(HttpUrl)


@router.get("")
async def source_list(request: Request, viewer: ViewerDep, session: SessionDep, page_number: int = 1) -> Response:
    found = await sources.list_sources(session, viewer.company_id,
                                       PageParams(page=max(page_number, 1), page_size=PAGE_SIZE))
    return page(request, "knowledge.html", viewer, sources=found, nav="knowledge", error=None)


@router.post("/sources")
async def create_source(request: Request, viewer: ViewerDep, session: SessionDep,
                        name: Annotated[str, Form(max_length=200)] = "",
                        description: Annotated[str, Form(max_length=5_000)] = "") -> Response:
    try:
        body = KnowledgeSourceCreate(name=name.strip(), description=description)
    except ValidationError:
        found = await sources.list_sources(session, viewer.company_id, PageParams(page=1, page_size=PAGE_SIZE))
        return page(request, "knowledge.html", viewer, status_code=422, sources=found, nav="knowledge",
                    error="A source needs a name (1 to 200 characters).")
    created = await sources.create_source(session, viewer.company_id, body)
    return RedirectResponse(f"{PREFIX}/knowledge/sources/{created.id}", status_code=303)


async def _source_context(session: SessionDep, company_id: uuid.UUID, source_id: uuid.UUID,
                          page_number: int) -> dict[str, Any]:
    source = await sources.get_source(session, company_id, source_id)
    found = await documents.list_documents(session, company_id, source_id,
                                           PageParams(page=max(page_number, 1), page_size=PAGE_SIZE), None)
    busy = any(d.status in ("queued", "processing") for d in found.items)
    return {"source": source, "documents": found, "busy": busy, "page_number": page_number}


@router.get("/sources/{source_id}")
async def source_page(request: Request, source_id: uuid.UUID, viewer: ViewerDep, session: SessionDep,
                      page_number: int = 1) -> Response:
    context = await _source_context(session, viewer.company_id, source_id, page_number)
    return page(request, "source.html", viewer, nav="knowledge", agents=await queries.agent_names(
        session, viewer.company_id), hits=None, query="", **context)


@router.get("/sources/{source_id}/documents")
async def documents_fragment(request: Request, source_id: uuid.UUID, viewer: ViewerDep, session: SessionDep,
                             page_number: int = 1) -> Response:
    """The documents table alone: the page polls it while a document is queued or processing."""
    context = await _source_context(session, viewer.company_id, source_id, page_number)
    return page(request, "_documents.html", viewer, **context)


@router.post("/sources/{source_id}/files")
async def upload(request: Request, source_id: uuid.UUID, viewer: ViewerDep, runtime: RuntimeDep,
                 file: Annotated[UploadFile, File()]) -> Response:
    source = await source_of(runtime, viewer.company_id, source_id)
    path = await save_upload(runtime.settings, viewer.company_id, file)
    # In the background (a job): the page shows the document queued, then processing, then ready or failed.
    await knowledge_component(runtime).ingest_path(
        company_id=viewer.company_id, source=source, path=path, user_id=viewer.email, embedding_model=None,
        run_async=True, display_name=PurePath(file.filename).name if file.filename else path.name)
    return Response(status_code=204, headers={"HX-Trigger": "documents-changed"})


@router.post("/sources/{source_id}/urls")
async def add_url(source_id: uuid.UUID, viewer: ViewerDep, runtime: RuntimeDep,
                  url: Annotated[str, Form(max_length=2_000)]) -> Response:
    try:
        checked = str(_URL.validate_python(url.strip()))
    except ValidationError as exc:
        raise InvalidInput("url", "must be an http or https URL") from exc
    await knowledge_component(runtime).ingest_url(company_id=viewer.company_id, source_id=source_id, url=checked,
                                                  user_id=viewer.email, embedding_model=None, run_async=True)
    return RedirectResponse(f"{PREFIX}/knowledge/sources/{source_id}", status_code=303)


@router.post("/documents/{document_id}/retry")
async def retry(document_id: uuid.UUID, viewer: ViewerDep, runtime: RuntimeDep) -> Response:
    document = await documents.document_of(runtime, viewer.company_id, document_id)
    await knowledge_component(runtime).retry_document(company_id=viewer.company_id, document_id=document_id,
                                                      run_async=True)
    return RedirectResponse(f"{PREFIX}/knowledge/sources/{document.source_id}", status_code=303)


@router.post("/documents/{document_id}/delete")
async def delete_document(document_id: uuid.UUID, viewer: ViewerDep, session: SessionDep,
                          runtime: RuntimeDep) -> Response:
    document = await documents.get_document(session, viewer.company_id, document_id)
    source_id = document.source_id
    await documents.delete_document(session, runtime.config_cache, viewer.company_id, document_id)
    return RedirectResponse(f"{PREFIX}/knowledge/sources/{source_id}", status_code=303)


@router.post("/sources/{source_id}/search")
async def search(request: Request, source_id: uuid.UUID, viewer: ViewerDep, session: SessionDep,
                 runtime: RuntimeDep, agent_id: Annotated[uuid.UUID, Form()],
                 query: Annotated[str, Form(min_length=1, max_length=10_000)]) -> Response:
    """What the Context Engine would hand this agent's prompt for the message (the same retrieval)."""
    company_id = viewer.company_id

    async def load() -> AgentConfig:
        async with runtime.database.session() as own:
            return await build_config(own, company_id, agent_id)

    agent = (await runtime.config_cache.get(company_id, agent_id, load)).config
    warnings: list[str] = []
    hits = await knowledge_component(runtime).retrieve(company_id=company_id, agent=agent, query=query, top_k=5,
                                                       warnings=warnings)
    return page(request, "_search_hits.html", viewer, hits=hits, warnings=warnings,
                linked=source_id in agent.knowledge_source_ids)
