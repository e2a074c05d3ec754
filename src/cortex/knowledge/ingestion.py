"""Ingestion: documents → chunks → embeddings → a new chunk set per document, swapped in atomically.

A knowledge source holds many documents, and each document has its own live chunk set: ingesting a
document replaces that document's chunks and no other's. The new set is built beside the live one
(status `building`, invisible to readers) in batches, then one transaction retires and deletes the
document's old set and activates the new one. Readers therefore see the old set or the new set, never
a mix; a failure deletes the half-built set and leaves the old one live. Content already live with the
same model (same SHA-256) is recognised and not embedded again. Re-embedding builds a new set for
every document of the source and swaps them all in one transaction, so a source switches models only
when the new embedding is complete.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.agents import service as agents
from cortex.db.models import KnowledgeChunk, KnowledgeChunkSet, KnowledgeDocument, KnowledgeSource
from cortex.embeddings.errors import EmbeddingFailed
from cortex.embeddings.models import EmbeddingModelSpec
from cortex.events import outbox
from cortex.kit.runtime import Runtime
from cortex.knowledge import documents as knowledge_documents
from cortex.knowledge.chunking import Chunk, Chunker, SourceDocument

logger = logging.getLogger(__name__)

# Texts per embedder call: large enough for the model's own batching (64) to stay full, small enough
# that progress moves and the next batch is embedded while this one is written.
EMBED_GROUP = 256
STALE_BUILD = timedelta(hours=12)


class IngestionFailed(Exception):
    """Conversion, chunking or a local embedding model failed; the document's previous chunks are untouched.
    A remote model's failure leaves as the EmbeddingFailed it raised (502/503: not the caller's fault).
    `status_code` is the answer's status: 500 unless a subclass says the input or the source is at fault."""

    status_code = 500


class NothingToIndex(IngestionFailed):
    """The input converts to no text: the caller's document, not a server fault."""

    status_code = 422


class SourceGone(IngestionFailed):
    """The source or the document was deleted while it was being indexed."""

    status_code = 409


@dataclass(frozen=True)
class Progress:
    stage: str  # chunking | embedding | storing | done
    done: int
    total: int


ProgressCallback = Callable[[Progress], Awaitable[None]]


@dataclass(frozen=True)
class IngestOutcome:
    source_id: uuid.UUID
    set_id: uuid.UUID | None
    embedding_model: str
    documents_processed: int
    chunks_created: int
    chunks_embedded: int
    document_id: uuid.UUID | None = None
    # The document already held this content with this model: nothing was embedded.
    unchanged: bool = False


def chunker_for(runtime: Runtime) -> Chunker:
    settings = runtime.settings
    return Chunker(settings.knowledge_chunk_tokens, settings.knowledge_chunk_overlap_tokens)


def _vector_literal(row: np.ndarray) -> str:
    return "[" + ",".join(map(repr, row.tolist())) + "]"


_INSERT = text(
    "INSERT INTO knowledge_chunks (id, company_id, source_id, set_id, document_ref, position, heading_path, "
    "title, text, token_count, embedding_model, embedding) VALUES (:id, :company_id, :source_id, :set_id, "
    ":document_ref, :position, CAST(:heading_path AS jsonb), :title, :text, :token_count, :embedding_model, "
    "CAST(CAST(:embedding AS text) AS vector))")


async def _store_batch(runtime: Runtime, company_id: uuid.UUID, source_id: uuid.UUID, set_id: uuid.UUID,
                       model: str, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
    rows = [{"id": uuid.uuid4(), "company_id": company_id, "source_id": source_id, "set_id": set_id,
             "document_ref": chunk.document_ref, "position": chunk.position,
             "heading_path": json.dumps(chunk.heading_path, ensure_ascii=False), "title": chunk.title,
             "text": chunk.text, "token_count": chunk.token_count, "embedding_model": model,
             "embedding": _vector_literal(vector)} for chunk, vector in zip(chunks, vectors, strict=True)]
    async with runtime.database.session() as session:
        await session.execute(_INSERT, rows)


@dataclass(frozen=True)
class _Built:
    document_id: uuid.UUID
    set_id: uuid.UUID
    chunk_count: int
    # The live set this one replaces (re-embedding swaps only when it is still the live one).
    replaces: uuid.UUID | None = None


async def _lock_source(session: AsyncSession, company_id: uuid.UUID, source_id: uuid.UUID) -> KnowledgeSource:
    """The source row lock serialises every swap of the source's documents (always taken first)."""
    source = await session.scalar(select(KnowledgeSource).where(
        KnowledgeSource.id == source_id, KnowledgeSource.company_id == company_id).with_for_update())
    if source is None:
        raise SourceGone("the knowledge source was deleted during ingestion")
    return source


async def _activate(runtime: Runtime, company_id: uuid.UUID, source_id: uuid.UUID, built: Sequence[_Built],
                    model: str, content_sha256: str | None = None, *, only_if_current: bool = False) -> None:
    """One transaction: each built set replaces its document's live set; the other documents are untouched."""
    async with runtime.database.session() as session:
        source = await _lock_source(session, company_id, source_id)
        for item in built:
            document = await session.scalar(select(KnowledgeDocument).where(
                KnowledgeDocument.id == item.document_id).with_for_update())
            if document is None:
                if only_if_current:  # deleted during a re-embed: its new set went with it
                    continue
                raise SourceGone("the document was deleted during ingestion")
            if only_if_current:
                live = await session.scalar(select(KnowledgeChunkSet.id).where(
                    KnowledgeChunkSet.document_id == item.document_id, KnowledgeChunkSet.status == "active"))
                if live != item.replaces:  # re-ingested meanwhile: that newer content stays
                    await session.execute(delete(KnowledgeChunkSet).where(KnowledgeChunkSet.id == item.set_id))
                    continue
            await session.execute(delete(KnowledgeChunkSet).where(
                KnowledgeChunkSet.document_id == item.document_id, KnowledgeChunkSet.id != item.set_id,
                KnowledgeChunkSet.status == "active"))
            await session.execute(update(KnowledgeChunkSet).where(KnowledgeChunkSet.id == item.set_id).values(
                status="active", chunk_count=item.chunk_count, activated_at=datetime.now(UTC)))
            document.status, document.error = "ready", None
            document.chunk_count, document.embedding_model = item.chunk_count, model
            if content_sha256 is not None:
                document.content_sha256 = content_sha256
            await outbox.record(session, company_id, "knowledge.document.ready", {
                "document_id": document.id, "source_id": source_id, "name": document.name[:300],
                "chunk_count": item.chunk_count, "embedding_model": model})
        # Sets left half-built by a worker that died mid-ingestion.
        await session.execute(delete(KnowledgeChunkSet).where(
            KnowledgeChunkSet.source_id == source_id, KnowledgeChunkSet.status == "building",
            KnowledgeChunkSet.created_at < datetime.now(UTC) - STALE_BUILD))
        source.status = "ready"
        source.embedding_model = model
        linked = await agents.agents_linked_to(session, company_id, source_id=source_id)
        await agents.bump_versions(session, runtime.config_cache, company_id, linked, knowledge=True)


async def _discard(runtime: Runtime, company_id: uuid.UUID, source_id: uuid.UUID, set_ids: list[uuid.UUID]) -> None:
    async with runtime.database.session() as session:
        await session.execute(delete(KnowledgeChunkSet).where(KnowledgeChunkSet.id.in_(set_ids)))
        live = await session.scalar(select(KnowledgeChunkSet.id).where(
            KnowledgeChunkSet.source_id == source_id, KnowledgeChunkSet.status == "active").limit(1))
        await session.execute(update(KnowledgeSource).where(
            KnowledgeSource.id == source_id, KnowledgeSource.company_id == company_id).values(
            status="ready" if live else "failed"))


async def _new_set(runtime: Runtime, company_id: uuid.UUID, source_id: uuid.UUID, document_id: uuid.UUID,
                   spec: EmbeddingModelSpec, created_by: str | None) -> uuid.UUID:
    async with runtime.database.session() as session:
        # The source row first, as every swap locks it: the new set's foreign key then locks the document
        # only once no swap of this source can be waiting for that document.
        await session.execute(update(KnowledgeSource).where(KnowledgeSource.id == source_id)
                              .values(status="ingesting"))
        chunk_set = KnowledgeChunkSet(company_id=company_id, source_id=source_id, document_id=document_id,
                                      embedding_model=spec.name, dimensions=spec.dimensions, status="building",
                                      created_by=created_by)
        session.add(chunk_set)
        await session.flush()
        return chunk_set.id


async def _embed_into(runtime: Runtime, company_id: uuid.UUID, source_id: uuid.UUID, set_id: uuid.UUID,
                      chunks: list[Chunk], spec: EmbeddingModelSpec, report: Callable[[int], Awaitable[None]]) -> int:
    """Embed and store `chunks` into the building set; the count embedded."""
    groups = [chunks[i:i + EMBED_GROUP] for i in range(0, len(chunks), EMBED_GROUP)]
    embedded = 0
    # Pipelined: the embedder (its own thread) works on group i+1 while group i is written.
    pending = asyncio.ensure_future(runtime.embedder.embed([c.embedding_text() for c in groups[0]], spec.name))
    try:
        for index, group in enumerate(groups):
            vectors = await pending
            if index + 1 < len(groups):
                pending = asyncio.ensure_future(runtime.embedder.embed(
                    [c.embedding_text() for c in groups[index + 1]], spec.name))
            if vectors.shape != (len(group), spec.dimensions):
                raise IngestionFailed(f"{spec.name} returned vectors of shape {vectors.shape}, "
                                      f"expected ({len(group)}, {spec.dimensions})")
            await _store_batch(runtime, company_id, source_id, set_id, spec.name, group, vectors)
            embedded += len(group)
            await report(len(group))
    finally:
        if not pending.done():
            pending.cancel()
    return embedded


async def _guarded(runtime: Runtime, company_id: uuid.UUID, source_id: uuid.UUID, set_ids: list[uuid.UUID],
                   work: Awaitable[IngestOutcome]) -> IngestOutcome:
    """Run `work`; on any failure delete the sets it was building (the live ones stay) and say why."""
    try:
        return await work
    except BaseException as exc:
        await asyncio.shield(_discard(runtime, company_id, source_id, set_ids))
        if isinstance(exc, IngestionFailed | EmbeddingFailed | asyncio.CancelledError):
            raise
        if isinstance(exc, Exception):
            logger.warning("embedding failed", extra={"source_id": str(source_id), "error": type(exc).__name__})
            raise IngestionFailed(f"embedding failed: {type(exc).__name__}: {exc}") from exc
        raise


async def build_chunk_set(runtime: Runtime, *, company_id: uuid.UUID, source_id: uuid.UUID,
                          document_id: uuid.UUID, chunks: list[Chunk], spec: EmbeddingModelSpec,
                          created_by: str | None = None, progress: ProgressCallback | None = None,
                          documents: int = 0, content_sha256: str | None = None) -> IngestOutcome:
    """Embed `chunks` with `spec`'s model into a new set and make it the document's live set."""
    if not chunks:
        raise NothingToIndex("the input holds no text to index")
    set_id = await _new_set(runtime, company_id, source_id, document_id, spec, created_by)
    embedded = 0

    async def report(count: int) -> None:
        nonlocal embedded
        embedded += count
        if progress is not None:
            await progress(Progress("embedding", embedded, len(chunks)))

    async def work() -> IngestOutcome:
        count = await _embed_into(runtime, company_id, source_id, set_id, chunks, spec, report)
        await _activate(runtime, company_id, source_id, [_Built(document_id, set_id, len(chunks))], spec.name,
                        content_sha256)
        return IngestOutcome(source_id, set_id, spec.name, documents, len(chunks), count, document_id)

    outcome = await _guarded(runtime, company_id, source_id, [set_id], work())
    runtime.telemetry.metrics.record_ingested_chunks(outcome.chunks_embedded, spec.name)
    if progress is not None:
        await progress(Progress("done", len(chunks), len(chunks)))
    return outcome


async def live_chunk_count(runtime: Runtime, document_id: uuid.UUID, content_sha256: str, model: str) -> int | None:
    """The live chunk count when the document already holds this content embedded with this model."""
    async with runtime.database.session() as session:
        document = await session.get(KnowledgeDocument, document_id)
        if document is None or document.content_sha256 != content_sha256 or document.embedding_model != model:
            return None
        live = await session.scalar(select(KnowledgeChunkSet.chunk_count).where(
            KnowledgeChunkSet.document_id == document_id, KnowledgeChunkSet.status == "active",
            KnowledgeChunkSet.embedding_model == model))
        if live is None:
            return None
        document.status, document.error = "ready", None
        return int(live)


async def default_document(runtime: Runtime, company_id: uuid.UUID, source_id: uuid.UUID) -> uuid.UUID:
    """A source's catch-all document, for callers that bring their own documents (the benchmark)."""
    return await knowledge_documents.claim_document(runtime, company_id=company_id, source_id=source_id,
                                                    kind="documents", name="documents", params={})


async def ingest_documents(runtime: Runtime, *, company_id: uuid.UUID, source_id: uuid.UUID,
                           documents: Sequence[SourceDocument], embedding_model: str,
                           document_id: uuid.UUID | None = None, content_sha256: str | None = None,
                           created_by: str | None = None,
                           progress: ProgressCallback | None = None) -> IngestOutcome:
    """The one ingestion path: files, pages, agent documents and the benchmark all come through here.

    `documents` become the chunks of one knowledge document (`document_id`); with `content_sha256`,
    content already live with this model is answered as unchanged without embedding anything."""
    spec = runtime.embedder.spec(embedding_model)
    if document_id is None:
        document_id = await default_document(runtime, company_id, source_id)
    if content_sha256 is not None:
        live = await live_chunk_count(runtime, document_id, content_sha256, spec.name)
        if live is not None:
            if progress is not None:
                await progress(Progress("done", live, live))
            return IngestOutcome(source_id, None, spec.name, len(documents), 0, 0, document_id, unchanged=True)
    await knowledge_documents.set_status(runtime, document_id, "processing")
    chunker = chunker_for(runtime)

    def split_all() -> list[Chunk]:
        return [chunk for document in documents for chunk in chunker.split(document)]

    if progress is not None:
        await progress(Progress("chunking", 0, len(documents)))
    chunks = await asyncio.to_thread(split_all)
    return await build_chunk_set(runtime, company_id=company_id, source_id=source_id, document_id=document_id,
                                 chunks=chunks, spec=spec, created_by=created_by, progress=progress,
                                 documents=len(documents), content_sha256=content_sha256)


async def live_chunks(runtime: Runtime, company_id: uuid.UUID,
                      source_id: uuid.UUID) -> dict[uuid.UUID, tuple[uuid.UUID, list[Chunk]]]:
    """Per document of the source: its live set and chunks, in document order (what a re-embed re-encodes)."""
    async with runtime.database.session() as session:
        rows = (await session.execute(
            select(KnowledgeChunkSet.document_id, KnowledgeChunkSet.id.label("set_id"), KnowledgeChunk.document_ref,
                   KnowledgeChunk.position, KnowledgeChunk.heading_path, KnowledgeChunk.text,
                   KnowledgeChunk.token_count)
            .join(KnowledgeChunkSet, KnowledgeChunkSet.id == KnowledgeChunk.set_id)
            .where(KnowledgeChunkSet.source_id == source_id, KnowledgeChunkSet.company_id == company_id,
                   KnowledgeChunkSet.status == "active")
            .order_by(KnowledgeChunkSet.document_id, KnowledgeChunk.document_ref, KnowledgeChunk.position))).all()
    found: dict[uuid.UUID, tuple[uuid.UUID, list[Chunk]]] = {}
    for r in rows:
        found.setdefault(r.document_id, (r.set_id, []))[1].append(
            Chunk(r.document_ref, r.position, list(r.heading_path), r.text, r.token_count))
    return found


async def reembed(runtime: Runtime, *, company_id: uuid.UUID, source_id: uuid.UUID, embedding_model: str,
                  created_by: str | None = None, progress: ProgressCallback | None = None) -> IngestOutcome:
    """Every document of the source, embedded again with `embedding_model`; swapped in all at once."""
    spec = runtime.embedder.spec(embedding_model)
    live = await live_chunks(runtime, company_id, source_id)
    total = sum(len(chunks) for _, chunks in live.values())
    if not total:
        raise NothingToIndex("the source has no chunks to re-embed; ingest something first")
    built: list[_Built] = []
    set_ids: list[uuid.UUID] = []
    embedded = 0

    async def report(count: int) -> None:
        nonlocal embedded
        embedded += count
        if progress is not None:
            await progress(Progress("embedding", embedded, total))

    async def work() -> IngestOutcome:
        for document_id, (old_set, chunks) in live.items():
            set_id = await _new_set(runtime, company_id, source_id, document_id, spec, created_by)
            set_ids.append(set_id)
            await _embed_into(runtime, company_id, source_id, set_id, chunks, spec, report)
            built.append(_Built(document_id, set_id, len(chunks), old_set))
        await _activate(runtime, company_id, source_id, built, spec.name, only_if_current=True)
        return IngestOutcome(source_id, None, spec.name, len(built), total, embedded)

    outcome = await _guarded(runtime, company_id, source_id, set_ids, work())
    runtime.telemetry.metrics.record_ingested_chunks(outcome.chunks_embedded, spec.name)
    if progress is not None:
        await progress(Progress("done", total, total))
    return outcome


async def fail_document(runtime: Runtime, document_id: uuid.UUID, error: str) -> None:
    """The document's ingestion failed: it says why, and a `knowledge.document.failed` event says so in the
    same transaction; its live chunks (if any) stay searchable."""
    async with runtime.database.session() as session:
        document = await knowledge_documents.mark_failed(session, document_id, error)
        if document is not None:
            await outbox.record(session, document.company_id, "knowledge.document.failed", {
                "document_id": document.id, "source_id": document.source_id, "name": document.name[:300],
                "previous_index_kept": document.chunk_count > 0, "error": error[:500]})

