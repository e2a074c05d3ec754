"""Knowledge operations behind the endpoints and the CLI: ingest a file, a page, an agent's documents,
re-embed a source, search as the Context Engine does. Each runs inline or as a background job."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from cortex.agents import service as agents
from cortex.agents.schemas import AgentConfig
from cortex.db.models import AgentKnowledgeSource, KnowledgeChunkSet, KnowledgeSource
from cortex.embeddings.errors import EmbeddingFailed
from cortex.embeddings.models import DEFAULT_EMBEDDING_MODEL
from cortex.kit.errors import InvalidInput, NotFound
from cortex.kit.runtime import Runtime
from cortex.kit.url_guard import BlockedUrl, check_url
from cortex.knowledge import convert
from cortex.knowledge.chunking import SourceDocument
from cortex.knowledge.ingestion import IngestionFailed, IngestOutcome, ProgressCallback, ingest_documents, reembed
from cortex.knowledge.jobs import ClaimedJob, JobRunner, Work, create_job
from cortex.knowledge.retrieval import KnowledgeRetriever, RetrievalTuning
from cortex.knowledge.uploads import company_folder, inside_folder, resolve_company_file
from cortex.pipeline.ports import KNOWLEDGE


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
    # The answer's status when `error` is set: 422 for an input that cannot be indexed, 409 for a source
    # deleted meanwhile, 502/503 for an embedding provider's failure, else 500.
    failure_status: int = 500

    @property
    def status_code(self) -> int:
        return self.failure_status if self.error else 200


async def source_of(runtime: Runtime, company_id: uuid.UUID, source_id: uuid.UUID) -> KnowledgeSource:
    async with runtime.database.session() as session:
        source = await session.scalar(select(KnowledgeSource).where(KnowledgeSource.id == source_id,
                                                                    KnowledgeSource.company_id == company_id))
    if source is None:
        raise NotFound("knowledge source not found")
    return source


class KnowledgeComponent:
    """Registered as the pipeline's KNOWLEDGE port; also owns the background jobs of this worker."""

    available = True

    def __init__(self, runtime: Runtime, tuning: RetrievalTuning | None = None) -> None:
        self.runtime = runtime
        self.retriever = KnowledgeRetriever(runtime, tuning)
        self.jobs = JobRunner(runtime)

    # --- the port ------------------------------------------------------------------------------------

    async def retrieve(self, *, company_id: uuid.UUID, agent: AgentConfig, query: str, top_k: int,
                       warnings: list[str] | None = None) -> list[Any]:
        return await self.retriever.retrieve(company_id=company_id, agent=agent, query=query, top_k=top_k,
                                             warnings=warnings)

    async def aclose(self) -> None:
        await self.jobs.aclose()

    # --- running work inline or as a job ---------------------------------------------------------------

    async def _run(self, work: Work, *, background: bool, company_id: uuid.UUID, kind: str,
                   source_id: uuid.UUID | None = None, agent_id: uuid.UUID | None = None,
                   created_by: str | None = None, params: dict[str, Any] | None = None) -> Accepted | Finished:
        if background:
            job = await create_job(self.runtime, company_id=company_id, kind=kind, source_id=source_id,
                                   agent_id=agent_id, created_by=created_by, params=params, owner=self.jobs.owner)
            self.jobs.start(job.id, work)
            return Accepted(job.id, kind, source_id, agent_id)

        async def quiet(_: Any) -> None:
            return None

        try:
            return Finished(await work(quiet), None)
        except convert.ConversionFailed as exc:  # a corrupt file or a page without text: the input's fault
            return Finished(None, str(exc), 422)
        except IngestionFailed as exc:
            return Finished(None, str(exc), exc.status_code)
        except EmbeddingFailed as exc:  # the provider's fault, told apart by its status (502/503)
            return Finished(None, exc.detail, exc.status_code)

    # --- operations -------------------------------------------------------------------------------------

    async def ingest_file(self, *, company_id: uuid.UUID, source_id: uuid.UUID, file_path: str, user_id: str,
                          embedding_model: str | None, run_async: bool | None) -> Accepted | Finished:
        source = await source_of(self.runtime, company_id, source_id)
        path = await asyncio.to_thread(resolve_company_file, company_folder(self.runtime.settings, company_id),
                                       file_path)
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
        work = self._file_work(company_id, source.id, path, name, model, user_id)
        recorded = await asyncio.to_thread(self._recorded_path, path)
        return await self._run(work, background=background, company_id=company_id, kind="file",
                               source_id=source.id, created_by=user_id,
                               params={"file": name, "model": model, "path": recorded})

    def _file_work(self, company_id: uuid.UUID, source_id: uuid.UUID, path: Path, name: str, model: str,
                   user_id: str | None) -> Work:
        async def work(progress: ProgressCallback) -> IngestOutcome:
            converted = await asyncio.to_thread(convert.convert_file_sync, path)
            document = SourceDocument(name, converted.markdown)
            return await ingest_documents(self.runtime, company_id=company_id, source_id=source_id,
                                          documents=[document], embedding_model=model, created_by=user_id,
                                          progress=progress)

        return work

    def _recorded_path(self, path: Path) -> str:
        """Where a resumed job finds its file (blocking: resolves on disk): relative to the upload
        directory when inside it (workers may mount it at different places), else as given."""
        root = self.runtime.settings.resolved_upload_dir.resolve()
        resolved = path.resolve()
        return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(resolved)

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
        return await self._run(self._url_work(company_id, source.id, url, model, user_id),
                               background=bool(run_async), company_id=company_id, kind="url", source_id=source.id,
                               created_by=user_id, params={"url": url, "model": model})

    def _url_work(self, company_id: uuid.UUID, source_id: uuid.UUID, url: str, model: str,
                  user_id: str | None) -> Work:
        settings = self.runtime.settings

        async def work(progress: ProgressCallback) -> IngestOutcome:
            try:
                body, content_type = await convert.fetch_url(
                    url, allow_private=settings.allow_private_webhooks, max_bytes=settings.ingest_url_max_bytes,
                    timeout_seconds=settings.ingest_url_timeout_seconds)
            except (convert.FetchFailed, BlockedUrl) as exc:  # BlockedUrl: a redirect towards a private address
                # The page is the caller's input: a 404, a dead host or an oversized page is a 422 on `url`.
                raise InvalidInput("url", f"could not fetch {url}: {exc}") from exc
            converted = await asyncio.to_thread(convert.convert_bytes_sync, body, content_type=content_type, url=url)
            document = SourceDocument(url, converted.markdown, [converted.title] if converted.title else [])
            return await ingest_documents(self.runtime, company_id=company_id, source_id=source_id,
                                          documents=[document], embedding_model=model, created_by=user_id,
                                          progress=progress)

        return work

    async def ingest_agent_documents(self, *, company_id: uuid.UUID, agent_id: uuid.UUID, user_id: str,
                                     embedding_model: str | None, run_async: bool | None) -> Accepted | Finished:
        async with self.runtime.database.session() as session:
            config = await agents.build_config(session, company_id, agent_id)
        model = embedding_model or DEFAULT_EMBEDDING_MODEL
        self.runtime.embedder.spec(model)
        source_id = await self._documents_source(company_id, config, model)
        work = self._documents_work(company_id, agent_id, source_id, model, user_id, agent_documents(config))
        return await self._run(work,
                               background=bool(run_async), company_id=company_id, kind="documents",
                               source_id=source_id, agent_id=agent_id, created_by=user_id, params={"model": model})

    def _documents_work(self, company_id: uuid.UUID, agent_id: uuid.UUID, source_id: uuid.UUID, model: str,
                        user_id: str | None, given: list[SourceDocument] | None = None) -> Work:
        """`given`: the documents the request read; a resumed job (None) reads the agent's current ones."""
        async def work(progress: ProgressCallback) -> IngestOutcome | None:
            documents = given
            if documents is None:  # NotFound here fails the job once the agent is gone
                async with self.runtime.database.session() as session:
                    documents = agent_documents(await agents.build_config(session, company_id, agent_id))
            if not documents:
                await self._clear(company_id, source_id)
                return None
            return await ingest_documents(self.runtime, company_id=company_id, source_id=source_id,
                                          documents=documents, embedding_model=model, created_by=user_id,
                                          progress=progress)

        return work

    async def reembed_source(self, *, company_id: uuid.UUID, source_id: uuid.UUID, embedding_model: str | None,
                             run_async: bool | None) -> Accepted | Finished:
        source = await source_of(self.runtime, company_id, source_id)
        model = embedding_model or source.embedding_model or DEFAULT_EMBEDDING_MODEL
        self.runtime.embedder.spec(model)
        return await self._run(self._reembed_work(company_id, source_id, model), background=bool(run_async),
                               company_id=company_id, kind="reembed", source_id=source_id, params={"model": model})

    def _reembed_work(self, company_id: uuid.UUID, source_id: uuid.UUID, model: str) -> Work:
        async def work(progress: ProgressCallback) -> IngestOutcome:
            return await reembed(self.runtime, company_id=company_id, source_id=source_id, embedding_model=model,
                                 progress=progress)

        return work

    # --- resuming a job whose worker stopped ------------------------------------------------------------

    def serve(self) -> None:
        """Called by a serving worker: keep job leases alive and resume jobs abandoned by dead workers."""
        self.jobs.serve(self.resume)

    async def resume(self, job: ClaimedJob) -> Work:
        """The claimed job's work, rebuilt from what it recorded; CortexError when it cannot run again."""
        model = str(job.params.get("model") or DEFAULT_EMBEDDING_MODEL)
        self.runtime.embedder.spec(model)
        if job.kind == "documents" and job.agent_id is not None and job.source_id is not None:
            return self._documents_work(job.company_id, job.agent_id, job.source_id, model, job.created_by)
        if job.source_id is None:
            raise InvalidInput("job", "the job names no source")
        source = await source_of(self.runtime, job.company_id, job.source_id)
        if job.kind == "reembed":
            return self._reembed_work(job.company_id, source.id, model)
        if job.kind == "url" and job.params.get("url"):
            return self._url_work(job.company_id, source.id, str(job.params["url"]), model, job.created_by)
        if job.kind == "file" and job.params.get("path"):
            recorded = Path(str(job.params["path"]))
            path = recorded if recorded.is_absolute() else self.runtime.settings.resolved_upload_dir / recorded
            if await asyncio.to_thread(inside_folder, company_folder(self.runtime.settings, job.company_id),
                                       path) is None:
                raise InvalidInput("job", "its file lies outside the company's upload folder")
            if not await asyncio.to_thread(path.is_file):
                raise NotFound(f"the file {job.params.get('file') or path.name} is no longer there")
            return self._file_work(job.company_id, source.id, path, str(job.params.get("file") or path.name), model,
                                   job.created_by)
        raise InvalidInput("job", f"a {job.kind} job without what it needs to run again")

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
