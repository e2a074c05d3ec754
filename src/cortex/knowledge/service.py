"""Knowledge operations behind the endpoints and the CLI: ingest a file, a page, an agent's documents,
re-embed a source, search as the Context Engine does. Each runs inline or as a background job."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from sqlalchemy import delete, select

from cortex.agents import service as agents
from cortex.agents.schemas import AgentConfig
from cortex.db.models import AgentKnowledgeSource, KnowledgeChunkSet, KnowledgeSource
from cortex.embeddings.models import DEFAULT_EMBEDDING_MODEL
from cortex.kit.errors import InvalidInput, NotFound
from cortex.kit.runtime import Runtime
from cortex.kit.url_guard import BlockedUrl, check_url
from cortex.knowledge import convert
from cortex.knowledge.chunking import SourceDocument
from cortex.knowledge.ingestion import IngestionFailed, IngestOutcome, ProgressCallback, ingest_documents, reembed
from cortex.knowledge.jobs import JobRunner, Work, create_job
from cortex.knowledge.retrieval import KnowledgeRetriever, RetrievalTuning
from cortex.pipeline.ports import KNOWLEDGE

# Failures that belong to the input or the model, reported in the result body (never a bare trace).
EXPECTED_FAILURES = (IngestionFailed, convert.ConversionFailed, convert.FetchFailed)


@dataclass(frozen=True)
class Accepted:
    job_id: uuid.UUID
    kind: str
    source_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Finished:
    outcome: IngestOutcome | None
    error: str | None


async def source_of(runtime: Runtime, company_id: uuid.UUID, source_id: uuid.UUID) -> KnowledgeSource:
    async with runtime.database.session() as session:
        source = await session.scalar(select(KnowledgeSource).where(KnowledgeSource.id == source_id,
                                                                    KnowledgeSource.company_id == company_id))
    if source is None:
        raise NotFound("knowledge source not found")
    return source


def resolve_upload_path(upload_dir: Path, file_path: str) -> Path:
    """`file_path` (relative to CORTEX_UPLOAD_DIR, or absolute inside it) → the file; else 422."""
    if "\x00" in file_path or ".." in PurePath(file_path).parts:
        raise InvalidInput("file_path", "file_path must not contain '..'")
    root = upload_dir.resolve()
    candidate = Path(file_path)
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if not resolved.is_relative_to(root):
        raise InvalidInput("file_path", "file_path must lie inside the upload directory (CORTEX_UPLOAD_DIR)")
    if not resolved.is_file():
        raise InvalidInput("file_path", "no such file in the upload directory")
    if resolved.suffix.lower() not in convert.SUPPORTED_EXTENSIONS:
        raise InvalidInput("file_path", "unsupported file type; one of "
                           + ", ".join(sorted(convert.SUPPORTED_EXTENSIONS)))
    return resolved


class KnowledgeComponent:
    """Registered as the pipeline's KNOWLEDGE port; also owns the background jobs of this worker."""

    available = True

    def __init__(self, runtime: Runtime, tuning: RetrievalTuning | None = None) -> None:
        self.runtime = runtime
        self.retriever = KnowledgeRetriever(runtime, tuning)
        self.jobs = JobRunner(runtime)

    # --- the port ------------------------------------------------------------------------------------

    async def retrieve(self, *, company_id: uuid.UUID, agent: AgentConfig, query: str,
                       top_k: int) -> list[Any]:
        return await self.retriever.retrieve(company_id=company_id, agent=agent, query=query, top_k=top_k)

    async def aclose(self) -> None:
        await self.jobs.aclose()

    # --- running work inline or as a job ---------------------------------------------------------------

    async def _run(self, work: Work, *, background: bool, company_id: uuid.UUID, kind: str,
                   source_id: uuid.UUID | None = None, agent_id: uuid.UUID | None = None,
                   created_by: str | None = None, params: dict[str, Any] | None = None) -> Accepted | Finished:
        if background:
            job = await create_job(self.runtime, company_id=company_id, kind=kind, source_id=source_id,
                                   agent_id=agent_id, created_by=created_by, params=params)
            self.jobs.start(job.id, work)
            return Accepted(job.id, kind, source_id, agent_id)

        async def quiet(_: Any) -> None:
            return None

        try:
            return Finished(await work(quiet), None)
        except EXPECTED_FAILURES as exc:
            return Finished(None, str(exc))

    # --- operations -------------------------------------------------------------------------------------

    async def ingest_file(self, *, company_id: uuid.UUID, source_id: uuid.UUID, file_path: str, user_id: str,
                          embedding_model: str | None, run_async: bool | None) -> Accepted | Finished:
        source = await source_of(self.runtime, company_id, source_id)
        path = await asyncio.to_thread(resolve_upload_path, self.runtime.settings.resolved_upload_dir, file_path)
        return await self.ingest_path(company_id=company_id, source=source, path=path, user_id=user_id,
                                      embedding_model=embedding_model, run_async=run_async)

    async def ingest_path(self, *, company_id: uuid.UUID, source: KnowledgeSource, path: Path, user_id: str | None,
                          embedding_model: str | None, run_async: bool | None,
                          display_name: str | None = None) -> Accepted | Finished:
        model = embedding_model or source.embedding_model or DEFAULT_EMBEDDING_MODEL
        self.runtime.embedder.spec(model)  # 422 now for a model that cannot run here
        settings = self.runtime.settings
        size = (await asyncio.to_thread(path.stat)).st_size
        if size > settings.ingest_max_file_bytes:
            raise InvalidInput("file_path", f"the file is larger than {settings.ingest_max_file_bytes} bytes")
        background = run_async if run_async is not None else size > settings.ingest_sync_max_bytes
        name = display_name or path.name

        async def work(progress: ProgressCallback) -> IngestOutcome:
            converted = await asyncio.to_thread(convert.convert_file_sync, path)
            document = SourceDocument(name, converted.markdown)
            return await ingest_documents(self.runtime, company_id=company_id, source_id=source.id,
                                          documents=[document], embedding_model=model, created_by=user_id,
                                          progress=progress)

        return await self._run(work, background=background, company_id=company_id, kind="file",
                               source_id=source.id, created_by=user_id, params={"file": name, "model": model})

    async def ingest_url(self, *, company_id: uuid.UUID, source_id: uuid.UUID, url: str, user_id: str,
                         embedding_model: str | None, run_async: bool | None) -> Accepted | Finished:
        source = await source_of(self.runtime, company_id, source_id)
        model = embedding_model or source.embedding_model or DEFAULT_EMBEDDING_MODEL
        self.runtime.embedder.spec(model)
        settings = self.runtime.settings
        try:
            await check_url(url, allow_private=settings.allow_private_webhooks)
        except BlockedUrl as exc:
            raise InvalidInput("url", str(exc)) from exc

        async def work(progress: ProgressCallback) -> IngestOutcome:
            try:
                body, content_type = await convert.fetch_url(
                    url, allow_private=settings.allow_private_webhooks, max_bytes=settings.ingest_url_max_bytes,
                    timeout_seconds=settings.ingest_url_timeout_seconds)
            except BlockedUrl as exc:  # a redirect towards a private address
                raise convert.FetchFailed(str(exc)) from exc
            converted = await asyncio.to_thread(convert.convert_bytes_sync, body, content_type=content_type, url=url)
            document = SourceDocument(url, converted.markdown, [converted.title] if converted.title else [])
            return await ingest_documents(self.runtime, company_id=company_id, source_id=source.id,
                                          documents=[document], embedding_model=model, created_by=user_id,
                                          progress=progress)

        return await self._run(work, background=bool(run_async), company_id=company_id, kind="url",
                               source_id=source.id, created_by=user_id, params={"url": url, "model": model})

    async def ingest_agent_documents(self, *, company_id: uuid.UUID, agent_id: uuid.UUID, user_id: str,
                                     embedding_model: str | None, run_async: bool | None) -> Accepted | Finished:
        async with self.runtime.database.session() as session:
            config = await agents.build_config(session, company_id, agent_id)
        model = embedding_model or DEFAULT_EMBEDDING_MODEL
        self.runtime.embedder.spec(model)
        documents = agent_documents(config)
        source_id = await self._documents_source(company_id, config, model)

        async def work(progress: ProgressCallback) -> IngestOutcome | None:
            if not documents:
                await self._clear(company_id, source_id)
                return None
            return await ingest_documents(self.runtime, company_id=company_id, source_id=source_id,
                                          documents=documents, embedding_model=model, created_by=user_id,
                                          progress=progress)

        return await self._run(work, background=bool(run_async), company_id=company_id, kind="documents",
                               source_id=source_id, agent_id=agent_id, created_by=user_id, params={"model": model})

    async def reembed_source(self, *, company_id: uuid.UUID, source_id: uuid.UUID, embedding_model: str | None,
                             run_async: bool | None) -> Accepted | Finished:
        source = await source_of(self.runtime, company_id, source_id)
        model = embedding_model or source.embedding_model or DEFAULT_EMBEDDING_MODEL
        self.runtime.embedder.spec(model)

        async def work(progress: ProgressCallback) -> IngestOutcome:
            return await reembed(self.runtime, company_id=company_id, source_id=source_id, embedding_model=model,
                                 progress=progress)

        return await self._run(work, background=bool(run_async), company_id=company_id, kind="reembed",
                               source_id=source_id, params={"model": model})

    # --- the agent's own documents ------------------------------------------------------------------------

    async def _documents_source(self, company_id: uuid.UUID, agent: AgentConfig, model: str) -> uuid.UUID:
        """The agent's 'documents' source (created and linked on first use)."""
        async with self.runtime.database.session() as session:
            source = await session.scalar(select(KnowledgeSource).where(
                KnowledgeSource.company_id == company_id, KnowledgeSource.source_type == "documents",
                KnowledgeSource.metadata_["agent_id"].astext == str(agent.id)))
            if source is None:
                source = KnowledgeSource(company_id=company_id, name=f"{agent.name}: FAQs and scenarios"[:200],
                                         description="The agent's structured knowledge, embedded for retrieval.",
                                         source_type="documents", embedding_model=model,
                                         metadata_={"agent_id": str(agent.id)})
                session.add(source)
                await session.flush()
            linked = await session.scalar(select(AgentKnowledgeSource).where(
                AgentKnowledgeSource.agent_id == agent.id, AgentKnowledgeSource.source_id == source.id))
            if linked is None:
                session.add(AgentKnowledgeSource(agent_id=agent.id, source_id=source.id,
                                                 position=len(agent.knowledge_source_ids)))
                await agents.bump_versions(session, self.runtime.config_cache, company_id, [agent.id],
                                           config=True, knowledge=True)
            return source.id

    async def _clear(self, company_id: uuid.UUID, source_id: uuid.UUID) -> None:
        async with self.runtime.database.session() as session:
            await session.execute(delete(KnowledgeChunkSet).where(KnowledgeChunkSet.source_id == source_id,
                                                                  KnowledgeChunkSet.company_id == company_id))
            linked = await agents.agents_linked_to(session, company_id, source_id=source_id)
            await agents.bump_versions(session, self.runtime.config_cache, company_id, linked, knowledge=True)


def agent_documents(agent: AgentConfig) -> list[SourceDocument]:
    """FAQs (question and answer together), workflow FAQs and scenarios, one document each."""
    documents: list[SourceDocument] = []
    for index, faq in enumerate(agent.faqs):
        documents.append(SourceDocument(f"faq:{index}", f"Q: {faq.question}\n\nA: {faq.answer}", ["FAQ"]))
    for index, faq in enumerate(agent.workflow_faqs):
        documents.append(SourceDocument(f"workflow_faq:{index}", f"Q: {faq.question}\n\nA: {faq.answer}",
                                        ["Workflow FAQ"]))
    for index, scenario in enumerate(agent.scenarios):
        steps = "\n".join(f"{n}. {step}" for n, step in enumerate(scenario.steps, 1))
        body = "\n\n".join(part for part in (scenario.description, steps) if part) or scenario.name
        documents.append(SourceDocument(f"scenario:{index}", body, ["Scenario", scenario.name]))
    return documents


def knowledge_component(runtime: Runtime) -> KnowledgeComponent:
    """The worker's registered KNOWLEDGE component (registered here when the app wired none)."""
    component = runtime.components.get(KNOWLEDGE)
    if not isinstance(component, KnowledgeComponent):
        component = KnowledgeComponent(runtime)
        runtime.components[KNOWLEDGE] = component
    return component
