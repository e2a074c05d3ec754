"""Knowledge operations behind the endpoints and the CLI: ingest a file, a page, an agent's documents,
re-embed a source, search as the Context Engine does. Each runs inline or as a background job."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from cortex.agents import service as agents
from cortex.agents.schemas import AgentConfig
from cortex.db.models import AgentKnowledgeSource, KnowledgeDocument, KnowledgeSource
from cortex.embeddings.errors import EmbeddingFailed
from cortex.embeddings.models import DEFAULT_EMBEDDING_MODEL
from cortex.kit.errors import Conflict, CortexError, InvalidInput, NotFound
from cortex.kit.runtime import Runtime
from cortex.kit.url_guard import BlockedUrl, check_url
from cortex.knowledge import convert
from cortex.knowledge.chunking import SourceDocument
from cortex.knowledge.documents import AGENT_DOCUMENTS_NAME, claim_document, document_of, set_status
from cortex.knowledge.ingestion import (
    IngestionFailed,
    IngestOutcome,
    ProgressCallback,
    fail_document,
    ingest_documents,
    live_chunk_count,
    reembed,
)
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
    document_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Finished:
    outcome: IngestOutcome | None
    error: str | None
    document_id: uuid.UUID | None = None
    # The answer's status when `error` is set: 422 for an input that cannot be indexed, 409 for a source
    # deleted meanwhile, 502/503 for an embedding provider's failure, else 500.
    failure_status: int = 500

    @property
    def status_code(self) -> int:
        return self.failure_status if self.error else 200

    @property
    def status(self) -> str:
        if self.error:
            return "failed"
        return "unchanged" if self.outcome is not None and self.outcome.unchanged else "completed"


# What a document's ingestion reads first: its content's SHA-256 and what conversion needs (the bytes of a
# page, the agent's documents); then what turns that into documents to chunk.
Digest = Callable[[], Awaitable[tuple[str, Any]]]
ToDocuments = Callable[[Any], Awaitable[list[SourceDocument]]]


# A document's name is its file name (or, from the command line, its path inside the folder ingested).
_MAX_NAME = 1_000


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def documents_sha256(documents: list[SourceDocument]) -> str:
    canonical = json.dumps([[d.ref, d.markdown, d.heading_path] for d in documents], ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _reason(exc: BaseException) -> str:
    return (exc.detail if isinstance(exc, CortexError) else str(exc)) or type(exc).__name__


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
                   created_by: str | None = None, params: dict[str, Any] | None = None,
                   document_id: uuid.UUID | None = None) -> Accepted | Finished:
        if background:
            if document_id is not None:
                params = {**(params or {}), "document_id": str(document_id)}
            job = await create_job(self.runtime, company_id=company_id, kind=kind, source_id=source_id,
                                   agent_id=agent_id, created_by=created_by, params=params, owner=self.jobs.owner)
            self.jobs.start(job.id, work)
            return Accepted(job.id, kind, source_id, agent_id, document_id)

        async def quiet(_: Any) -> None:
            return None

        try:
            outcome = await work(quiet)
        except convert.ConversionFailed as exc:  # a corrupt file or a page without text: the input's fault
            return Finished(None, str(exc), document_id, 422)
        except IngestionFailed as exc:
            return Finished(None, str(exc), document_id, exc.status_code)
        except EmbeddingFailed as exc:  # the provider's fault, told apart by its status (502/503)
            return Finished(None, exc.detail, document_id, exc.status_code)
        # No outcome: the agent has no documents left, and its document is gone.
        return Finished(outcome, None, outcome.document_id if outcome else None)

    def _document_work(self, company_id: uuid.UUID, source_id: uuid.UUID, document_id: uuid.UUID, model: str,
                       user_id: str | None, digest: Digest, to_documents: ToDocuments) -> Work:
        """One document's ingestion: unchanged content is answered at once; a failure is recorded on the
        document (its live chunks stay)."""
        async def work(progress: ProgressCallback) -> IngestOutcome:
            try:
                sha, payload = await digest()
                live = await live_chunk_count(self.runtime, document_id, sha, model)
                if live is not None:
                    return IngestOutcome(source_id, None, model, 0, 0, 0, document_id, unchanged=True)
                await set_status(self.runtime, document_id, "processing")
                documents = await to_documents(payload)
                return await ingest_documents(self.runtime, company_id=company_id, source_id=source_id,
                                              documents=documents, embedding_model=model, document_id=document_id,
                                              content_sha256=sha, created_by=user_id, progress=progress)
            except Exception as exc:
                await asyncio.shield(fail_document(self.runtime, document_id, _reason(exc)))
                raise

        return work

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
        """Adds the file as a document of the source, or replaces the source's document of that name."""
        model = embedding_model or source.embedding_model or DEFAULT_EMBEDDING_MODEL
        self.runtime.embedder.spec(model)  # 422 now for a model that cannot run here
        settings = self.runtime.settings
        size = (await asyncio.to_thread(path.stat)).st_size
        if size > settings.ingest_max_file_bytes:
            raise InvalidInput("file_path", f"the file is larger than {settings.ingest_max_file_bytes} bytes")
        background = run_async if run_async is not None else size > settings.ingest_sync_max_bytes
        name = (display_name or path.name)[:_MAX_NAME]
        recorded = await asyncio.to_thread(self._recorded_path, path)
        params = {"file": name, "model": model, "path": recorded}
        document_id = await claim_document(self.runtime, company_id=company_id, source_id=source.id, kind="file",
                                           name=name, params=params)
        if background:  # the same bytes need no job: answered at once
            sha = await asyncio.to_thread(_file_sha256, path)
            if await live_chunk_count(self.runtime, document_id, sha, model) is not None:
                return Finished(IngestOutcome(source.id, None, model, 0, 0, 0, document_id, unchanged=True), None,
                                document_id)
        work = self._file_work(company_id, source.id, document_id, path, name, model, user_id)
        return await self._run(work, background=background, company_id=company_id, kind="file",
                               source_id=source.id, created_by=user_id, params=params, document_id=document_id)

    def _file_work(self, company_id: uuid.UUID, source_id: uuid.UUID, document_id: uuid.UUID, path: Path,
                   name: str, model: str, user_id: str | None) -> Work:
        async def digest() -> tuple[str, Any]:
            return await asyncio.to_thread(_file_sha256, path), None

        async def to_documents(_: Any) -> list[SourceDocument]:
            converted = await asyncio.to_thread(convert.convert_file_sync, path)
            return [SourceDocument(name, converted.markdown)]

        return self._document_work(company_id, source_id, document_id, model, user_id, digest, to_documents)

    def _recorded_path(self, path: Path) -> str:
        """Where a resumed job finds its file (blocking: resolves on disk): relative to the upload
        directory when inside it (workers may mount it at different places), else as given."""
        root = self.runtime.settings.resolved_upload_dir.resolve()
        resolved = path.resolve()
        return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(resolved)

    def _recorded_file(self, recorded: str) -> Path:
        path = Path(recorded)
        return path if path.is_absolute() else self.runtime.settings.resolved_upload_dir / path

    async def ingest_url(self, *, company_id: uuid.UUID, source_id: uuid.UUID, url: str, user_id: str,
                         embedding_model: str | None, run_async: bool | None) -> Accepted | Finished:
        """Adds the page as a document of the source, or replaces the source's document of that URL."""
        source = await source_of(self.runtime, company_id, source_id)
        model = embedding_model or source.embedding_model or DEFAULT_EMBEDDING_MODEL
        self.runtime.embedder.spec(model)
        settings = self.runtime.settings
        try:
            await check_url(url, allow_private=settings.allow_private_webhooks)
        except BlockedUrl as exc:
            raise InvalidInput("url", str(exc)) from exc
        params = {"url": url, "model": model}
        document_id = await claim_document(self.runtime, company_id=company_id, source_id=source.id, kind="url",
                                           name=url, params=params)
        return await self._run(self._url_work(company_id, source.id, document_id, url, model, user_id),
                               background=bool(run_async), company_id=company_id, kind="url", source_id=source.id,
                               created_by=user_id, params=params, document_id=document_id)

    def _url_work(self, company_id: uuid.UUID, source_id: uuid.UUID, document_id: uuid.UUID, url: str, model: str,
                  user_id: str | None) -> Work:
        settings = self.runtime.settings

        async def digest() -> tuple[str, Any]:
            try:
                body, content_type = await convert.fetch_url(
                    url, allow_private=settings.allow_private_webhooks, max_bytes=settings.ingest_url_max_bytes,
                    timeout_seconds=settings.ingest_url_timeout_seconds)
            except (convert.FetchFailed, BlockedUrl) as exc:  # BlockedUrl: a redirect towards a private address
                # The page is the caller's input: a 404, a dead host or an oversized page is a 422 on `url`.
                raise InvalidInput("url", f"could not fetch {url}: {exc}") from exc
            return hashlib.sha256(body).hexdigest(), (body, content_type)

        async def to_documents(payload: Any) -> list[SourceDocument]:
            body, content_type = payload
            converted = await asyncio.to_thread(convert.convert_bytes_sync, body, content_type=content_type, url=url)
            return [SourceDocument(url, converted.markdown, [converted.title] if converted.title else [])]

        return self._document_work(company_id, source_id, document_id, model, user_id, digest, to_documents)

    async def ingest_agent_documents(self, *, company_id: uuid.UUID, agent_id: uuid.UUID, user_id: str,
                                     embedding_model: str | None, run_async: bool | None) -> Accepted | Finished:
        async with self.runtime.database.session() as session:
            config = await agents.build_config(session, company_id, agent_id)
        model = embedding_model or DEFAULT_EMBEDDING_MODEL
        self.runtime.embedder.spec(model)
        source_id = await self._documents_source(company_id, config, model)
        params = {"model": model, "agent_id": str(agent_id)}
        document_id = await claim_document(self.runtime, company_id=company_id, source_id=source_id,
                                           kind="documents", name=AGENT_DOCUMENTS_NAME, params=params)
        work = self._documents_work(company_id, agent_id, source_id, document_id, model, user_id,
                                    agent_documents(config))
        return await self._run(work, background=bool(run_async), company_id=company_id, kind="documents",
                               source_id=source_id, agent_id=agent_id, created_by=user_id, params={"model": model},
                               document_id=document_id)

    def _documents_work(self, company_id: uuid.UUID, agent_id: uuid.UUID, source_id: uuid.UUID,
                        document_id: uuid.UUID, model: str, user_id: str | None,
                        given: list[SourceDocument] | None = None) -> Work:
        """`given`: the documents the request read; a resumed job or a retry (None) reads the agent's
        current ones."""
        async def work(progress: ProgressCallback) -> IngestOutcome | None:
            documents = given
            if documents is None:
                try:  # NotFound here fails the job once the agent is gone
                    async with self.runtime.database.session() as session:
                        documents = agent_documents(await agents.build_config(session, company_id, agent_id))
                except Exception as exc:
                    await asyncio.shield(fail_document(self.runtime, document_id, _reason(exc)))
                    raise
            if not documents:
                await self._clear(company_id, source_id)
                return None
            found = documents

            async def digest() -> tuple[str, Any]:
                return documents_sha256(found), found

            async def to_documents(payload: Any) -> list[SourceDocument]:
                return list(payload)

            ingest = self._document_work(company_id, source_id, document_id, model, user_id, digest, to_documents)
            return await ingest(progress)

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

    async def retry_document(self, *, company_id: uuid.UUID, document_id: uuid.UUID,
                             run_async: bool | None) -> Accepted | Finished:
        """A failed document's ingestion, run again from what it recorded (its file, its URL, its agent)."""
        document = await document_of(self.runtime, company_id, document_id)
        if document.status != "failed":
            raise Conflict(f"only a failed document can be retried; this one is {document.status}")
        source = await source_of(self.runtime, company_id, document.source_id)
        work = await self._recorded_work(company_id, source, document, document.params, None)
        params = {**document.params, "model": document.params.get("model") or source.embedding_model}
        await set_status(self.runtime, document.id, "queued")
        agent_id = document.params.get("agent_id") if document.kind == "documents" else None
        return await self._run(work, background=bool(run_async), company_id=company_id, kind=document.kind,
                               source_id=source.id, agent_id=uuid.UUID(str(agent_id)) if agent_id else None,
                               params=params, document_id=document.id)

    async def _recorded_work(self, company_id: uuid.UUID, source: KnowledgeSource, document: KnowledgeDocument,
                             params: dict[str, Any], user_id: str | None) -> Work:
        """A document's ingestion rebuilt from recorded parameters; CortexError when it cannot run again."""
        model = str(params.get("model") or document.params.get("model") or source.embedding_model
                    or DEFAULT_EMBEDDING_MODEL)
        self.runtime.embedder.spec(model)
        recorded = params.get("path") or document.params.get("path")
        if document.kind == "file" and recorded:
            path = self._recorded_file(str(recorded))
            if await asyncio.to_thread(inside_folder, company_folder(self.runtime.settings, company_id),
                                       path) is None:
                raise InvalidInput("job", "its file lies outside the company's upload folder")
            if not await asyncio.to_thread(path.is_file):
                raise Conflict(f"the file {document.name} is no longer there")
            return self._file_work(company_id, source.id, document.id, path, document.name, model, user_id)
        if document.kind == "url":
            return self._url_work(company_id, source.id, document.id, document.name, model, user_id)
        agent_id = params.get("agent_id") or document.params.get("agent_id")
        if document.kind == "documents" and agent_id:
            return self._documents_work(company_id, uuid.UUID(str(agent_id)), source.id, document.id, model,
                                        user_id)
        raise Conflict(f"the {document.kind} document {document.name} recorded nothing to ingest again from")

    # --- resuming a job whose worker stopped ------------------------------------------------------------

    def serve(self) -> None:
        """Called by a serving worker: keep job leases alive and resume jobs abandoned by dead workers."""
        self.jobs.serve(self.resume)

    async def resume(self, job: ClaimedJob) -> Work:
        """The claimed job's work, rebuilt from what it recorded; CortexError when it cannot run again."""
        model = str(job.params.get("model") or DEFAULT_EMBEDDING_MODEL)
        self.runtime.embedder.spec(model)
        if job.source_id is None:
            raise InvalidInput("job", "the job names no source")
        source = await source_of(self.runtime, job.company_id, job.source_id)
        if job.kind == "reembed":
            return self._reembed_work(job.company_id, source.id, model)
        params = {**job.params, "model": model}
        if job.kind == "documents" and job.agent_id is not None:
            params["agent_id"] = str(job.agent_id)
        document = await self._job_document(job, source, params)
        if document is None:
            raise InvalidInput("job", f"a {job.kind} job without what it needs to run again")
        try:
            return await self._recorded_work(job.company_id, source, document, params, job.created_by)
        except CortexError as exc:
            await fail_document(self.runtime, document.id, f"cannot be resumed: {exc.detail}")
            raise

    async def _job_document(self, job: ClaimedJob, source: KnowledgeSource,
                            params: dict[str, Any]) -> KnowledgeDocument | None:
        """The document a job fills: recorded on the job, or (a job queued before documents existed) the
        source's document of the job's file name or URL."""
        if job.params.get("document_id"):
            try:
                return await document_of(self.runtime, job.company_id, uuid.UUID(str(job.params["document_id"])))
            except NotFound as exc:
                raise NotFound("the job's document was deleted") from exc
        names = {"file": job.params.get("file"), "url": job.params.get("url"), "documents": AGENT_DOCUMENTS_NAME}
        name = names.get(job.kind)
        if not name or (job.kind == "file" and not job.params.get("path")):
            return None
        document_id = await claim_document(self.runtime, company_id=job.company_id, source_id=source.id,
                                           kind=job.kind, name=str(name), params=params)
        return await document_of(self.runtime, job.company_id, document_id)

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
        """The agent has no FAQs or scenarios left: its documents source holds nothing."""
        async with self.runtime.database.session() as session:
            await session.execute(delete(KnowledgeDocument).where(KnowledgeDocument.source_id == source_id,
                                                                  KnowledgeDocument.company_id == company_id))
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
