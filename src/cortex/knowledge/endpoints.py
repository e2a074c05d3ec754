"""Knowledge sources (CRUD), their documents, ingestion (files, uploads, pages, agent documents,
re-embedding, retry), search and background jobs."""

from __future__ import annotations

import uuid
from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status
from fastapi.responses import JSONResponse

from cortex.agents.schemas import AgentConfig
from cortex.agents.service import build_config
from cortex.auth.deps import KnowledgeAuth
from cortex.kit.deps import RuntimeDep, SessionDep
from cortex.kit.pagination import ListParams, Page, list_query
from cortex.knowledge import documents, jobs, sources
from cortex.knowledge.schemas import (
    DocumentsIngestResult,
    DocumentStatus,
    EmbeddingModelName,
    IngestDocumentsRequest,
    IngestFileRequest,
    IngestResult,
    IngestUrlRequest,
    JobAccepted,
    JobPublic,
    JobStatus,
    KnowledgeDocumentPublic,
    KnowledgeSourceCreate,
    KnowledgeSourcePublic,
    KnowledgeSourceUpdate,
    ReembedRequest,
    ReembedResult,
    RetryRequest,
    SearchHit,
    SearchRequest,
    SearchResults,
    SourceStatus,
)
from cortex.knowledge.service import Accepted, Finished, knowledge_component, source_of
from cortex.knowledge.uploads import save_upload

sources_router = APIRouter(prefix="/v1/knowledge/sources", tags=["knowledge"])
knowledge_router = APIRouter(prefix="/v1/knowledge", tags=["knowledge"])
documents_router = APIRouter(prefix="/v1/knowledge/documents", tags=["knowledge"])
jobs_router = APIRouter(prefix="/v1/jobs", tags=["knowledge"])

_FAILED: dict[int | str, dict[str, Any]] = {
    409: {"description": "The source was deleted while ingesting; the body says so (status 'failed')."},
    422: {"description": "The file or page could not be converted or holds no text; the body says why "
                         "(status 'failed')."},
    502: {"description": "The embedding provider answered an error or malformed embeddings; the body says "
                         "why (status 'failed')."},
    503: {"description": "The embedding provider is unreachable or overloaded; the body says why "
                         "(status 'failed')."},
    202: {"model": JobAccepted, "description": "Accepted as a background job."},
}


@sources_router.post("", response_model=KnowledgeSourcePublic, status_code=status.HTTP_201_CREATED)
async def create_source(body: KnowledgeSourceCreate, principal: KnowledgeAuth,
                        session: SessionDep) -> KnowledgeSourcePublic:
    return sources.to_public(await sources.create_source(session, principal.company_id, body))


@sources_router.get("", response_model=Page[KnowledgeSourcePublic])
async def list_sources(principal: KnowledgeAuth, session: SessionDep,
                       page: Annotated[ListParams, list_query(sources.SOURCE_LISTING)],
                       source_status: Annotated[SourceStatus | None, Query(alias="status")] = None,
                       ) -> Page[KnowledgeSourcePublic]:
    return await sources.list_sources(session, principal.company_id, page, source_status)


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


# --- documents ---------------------------------------------------------------------------------------

@sources_router.get("/{source_id}/documents", response_model=Page[KnowledgeDocumentPublic])
async def list_documents(source_id: uuid.UUID, principal: KnowledgeAuth, session: SessionDep,
                         page: Annotated[ListParams, list_query(documents.DOCUMENT_LISTING)],
                         document_status: Annotated[DocumentStatus | None, Query(alias="status")] = None,
                         ) -> Page[KnowledgeDocumentPublic]:
    return await documents.list_documents(session, principal.company_id, source_id, page, document_status)


@documents_router.get("/{document_id}", response_model=KnowledgeDocumentPublic)
async def get_document(document_id: uuid.UUID, principal: KnowledgeAuth,
                       session: SessionDep) -> KnowledgeDocumentPublic:
    return documents.to_public(await documents.get_document(session, principal.company_id, document_id))


@documents_router.delete("/{document_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_document(document_id: uuid.UUID, principal: KnowledgeAuth, session: SessionDep,
                          runtime: RuntimeDep) -> Response:
    await documents.delete_document(session, runtime.config_cache, principal.company_id, document_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@documents_router.post("/{document_id}/retry", response_model=IngestResult,
                       responses={**_FAILED, 409: {"description": "The document has not failed, or its file is "
                                                                  "no longer there."}})
async def retry_document(document_id: uuid.UUID, principal: KnowledgeAuth, runtime: RuntimeDep,
                         body: RetryRequest | None = None) -> JSONResponse:
    result = await knowledge_component(runtime).retry_document(
        company_id=principal.company_id, document_id=document_id, run_async=body.run_async if body else None)
    document = await documents.document_of(runtime, principal.company_id, document_id)
    return _ingest_response(document.source_id, result)


# --- ingestion ---------------------------------------------------------------------------------------

def _accepted(accepted: Accepted) -> JSONResponse:
    body = JobAccepted(job_id=accepted.job_id, status="queued", kind=accepted.kind, source_id=accepted.source_id,
                       agent_id=accepted.agent_id, document_id=accepted.document_id)
    return JSONResponse(body.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED,
                        headers={"Location": f"/v1/jobs/{accepted.job_id}"})


def _ingest_response(source_id: uuid.UUID, result: Accepted | Finished) -> JSONResponse:
    if isinstance(result, Accepted):
        return _accepted(result)
    outcome = result.outcome
    body = IngestResult(source_id=source_id, status=result.status,
                        chunks_created=outcome.chunks_created if outcome else 0,
                        chunks_embedded=outcome.chunks_embedded if outcome else 0, error=result.error,
                        document_id=result.document_id)
    return JSONResponse(body.model_dump(mode="json"), status_code=result.status_code)


@knowledge_router.post("/ingest/file", response_model=IngestResult, responses=_FAILED)
async def ingest_file(body: IngestFileRequest, principal: KnowledgeAuth, runtime: RuntimeDep) -> JSONResponse:
    result = await knowledge_component(runtime).ingest_file(
        company_id=principal.company_id, source_id=body.source_id, file_path=body.file_path, user_id=body.user_id,
        embedding_model=body.embedding_model, run_async=body.run_async)
    return _ingest_response(body.source_id, result)


@sources_router.post("/{source_id}/files", response_model=IngestResult, responses=_FAILED)
async def upload_file(source_id: uuid.UUID, principal: KnowledgeAuth, runtime: RuntimeDep,
                      file: Annotated[UploadFile, File(description="The document (PDF, DOCX, PPTX, XLSX, HTML, "
                                                                    "CSV, Markdown or text).")],
                      user_id: Annotated[str | None, Form(max_length=200)] = None,
                      embedding_model: Annotated[EmbeddingModelName | None, Form()] = None,
                      run_async: Annotated[bool | None, Form(alias="async")] = None) -> JSONResponse:
    component = knowledge_component(runtime)
    source = await source_of(runtime, principal.company_id, source_id)
    path = await save_upload(runtime.settings, principal.company_id, file)
    result = await component.ingest_path(company_id=principal.company_id, source=source, path=path,
                                         user_id=user_id, embedding_model=embedding_model, run_async=run_async,
                                         display_name=PurePath(file.filename).name if file.filename else path.name)
    return _ingest_response(source_id, result)


@knowledge_router.post("/ingest/url", response_model=IngestResult, responses=_FAILED)
async def ingest_url(body: IngestUrlRequest, principal: KnowledgeAuth, runtime: RuntimeDep) -> JSONResponse:
    result = await knowledge_component(runtime).ingest_url(
        company_id=principal.company_id, source_id=body.source_id, url=str(body.url), user_id=body.user_id,
        embedding_model=body.embedding_model, run_async=body.run_async)
    return _ingest_response(body.source_id, result)


@knowledge_router.post("/ingest/documents", response_model=DocumentsIngestResult, responses=_FAILED)
async def ingest_documents(body: IngestDocumentsRequest, principal: KnowledgeAuth,
                           runtime: RuntimeDep) -> JSONResponse:
    principal.require_company(body.company_id)
    result = await knowledge_component(runtime).ingest_agent_documents(
        company_id=principal.company_id, agent_id=body.agent_id, user_id=body.user_id,
        embedding_model=body.embedding_model, run_async=body.run_async)
    if isinstance(result, Accepted):
        return _accepted(result)
    outcome = result.outcome
    response = DocumentsIngestResult(
        agent_id=body.agent_id, status=result.status,
        documents_processed=outcome.documents_processed if outcome else 0,
        chunks_created=outcome.chunks_created if outcome else 0,
        chunks_embedded=outcome.chunks_embedded if outcome else 0, error=result.error,
        document_id=result.document_id)
    return JSONResponse(response.model_dump(mode="json"), status_code=result.status_code)


@knowledge_router.post("/reembed", response_model=ReembedResult, responses=_FAILED)
async def reembed(body: ReembedRequest, principal: KnowledgeAuth, runtime: RuntimeDep) -> JSONResponse:
    result = await knowledge_component(runtime).reembed_source(
        company_id=principal.company_id, source_id=body.source_id, embedding_model=body.embedding_model,
        run_async=body.run_async)
    if isinstance(result, Accepted):
        return _accepted(result)
    response = ReembedResult(source_id=body.source_id, status="failed" if result.error else "completed",
                             chunks_embedded=result.outcome.chunks_embedded if result.outcome else 0,
                             error=result.error)
    return JSONResponse(response.model_dump(mode="json"), status_code=result.status_code)


# --- search ------------------------------------------------------------------------------------------

@knowledge_router.post("/search", response_model=SearchResults)
async def search(body: SearchRequest, principal: KnowledgeAuth, runtime: RuntimeDep) -> SearchResults:
    """What the Context Engine hands the prompt for this message (same agent config, same code path)."""
    company_id = principal.company_id

    async def load() -> AgentConfig:
        async with runtime.database.session() as session:
            return await build_config(session, company_id, body.agent_id)

    agent = (await runtime.config_cache.get(company_id, body.agent_id, load)).config
    component = knowledge_component(runtime)
    warnings: list[str] = []
    if body.mode == "hybrid":
        chunks: list[Any] = await component.retrieve(company_id=company_id, agent=agent, query=body.query,
                                                      top_k=body.top_k, warnings=warnings)
    else:
        found = await component.retriever.search(company_id=company_id, source_ids=agent.knowledge_source_ids,
                                                 query=body.query, top_k=body.top_k, mode=body.mode,
                                                 warnings=warnings)
        chunks = [c.public() for c in found]
    return SearchResults(results=[SearchHit(chunk_id=c.chunk_id, source_id=c.source_id, text=c.text,
                                            heading_path=c.heading_path, score=c.score, document_id=c.document_id,
                                            document_name=c.document_name) for c in chunks],
                         warnings=warnings)


# --- jobs --------------------------------------------------------------------------------------------

@jobs_router.get("", response_model=Page[JobPublic])
async def list_jobs(principal: KnowledgeAuth, session: SessionDep,
                    page: Annotated[ListParams, list_query(jobs.JOB_LISTING)],
                    job_status: Annotated[JobStatus | None, Query(alias="status")] = None,
                    source_id: uuid.UUID | None = None, agent_id: uuid.UUID | None = None) -> Page[JobPublic]:
    return await jobs.list_jobs(session, principal.company_id, page, status=job_status, source_id=source_id,
                                agent_id=agent_id)


@jobs_router.get("/{job_id}", response_model=JobPublic)
async def get_job(job_id: uuid.UUID, principal: KnowledgeAuth, runtime: RuntimeDep) -> JobPublic:
    return await jobs.get_job(runtime, principal.company_id, job_id)

