"""Ingestion: documents → chunks → embeddings → a new chunk set, swapped in atomically.

A source's chunks are replaced as a whole. The new set is built beside the live one (status
`building`, invisible to readers) in batches, then one transaction retires and deletes the old set and
activates the new one. Readers therefore see the old set or the new set, never a mix; a failure
deletes the half-built set and leaves the old one live. The same path serves re-embedding with
another model, so a source switches models only when the new embedding is complete.
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

from cortex.agents import service as agents
from cortex.db.models import KnowledgeChunk, KnowledgeChunkSet, KnowledgeSource
from cortex.embeddings.errors import EmbeddingFailed
from cortex.embeddings.models import EmbeddingModelSpec
from cortex.events import outbox
from cortex.kit.runtime import Runtime
from cortex.knowledge.chunking import Chunk, Chunker, SourceDocument

logger = logging.getLogger(__name__)

# Texts per embedder call: large enough for the model's own batching (64) to stay full, small enough
# that progress moves and the next batch is embedded while this one is written.
EMBED_GROUP = 256
STALE_BUILD = timedelta(hours=12)


class IngestionFailed(Exception):
    """Conversion, chunking or a local embedding model failed; the source's previous chunks are untouched.
    A remote model's failure leaves as the EmbeddingFailed it raised (502/503: not the caller's fault).
    `status_code` is the answer's status: 500 unless a subclass says the input or the source is at fault."""

    status_code = 500


class NothingToIndex(IngestionFailed):
    """The input converts to no text: the caller's document, not a server fault."""

    status_code = 422


class SourceGone(IngestionFailed):
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
    set_id: uuid.UUID
    embedding_model: str
    documents_processed: int
    chunks_created: int
    chunks_embedded: int


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


async def _activate(runtime: Runtime, company_id: uuid.UUID, source_id: uuid.UUID, set_id: uuid.UUID,
                    model: str, chunk_count: int) -> None:
    async with runtime.database.session() as session:
        # The source row lock serialises concurrent swaps of one source.
        source = await session.scalar(select(KnowledgeSource).where(
            KnowledgeSource.id == source_id, KnowledgeSource.company_id == company_id).with_for_update())
        if source is None:
            raise SourceGone("the knowledge source was deleted during ingestion")
        await session.execute(delete(KnowledgeChunkSet).where(
            KnowledgeChunkSet.source_id == source_id, KnowledgeChunkSet.id != set_id,
            KnowledgeChunkSet.status == "active"))
        # Sets left half-built by a worker that died mid-ingestion.
        await session.execute(delete(KnowledgeChunkSet).where(
            KnowledgeChunkSet.source_id == source_id, KnowledgeChunkSet.status == "building",
            KnowledgeChunkSet.created_at < datetime.now(UTC) - STALE_BUILD))
        await session.execute(update(KnowledgeChunkSet).where(KnowledgeChunkSet.id == set_id).values(
            status="active", chunk_count=chunk_count, activated_at=datetime.now(UTC)))
        source.status = "ready"
        source.embedding_model = model
        linked = await agents.agents_linked_to(session, company_id, source_id=source_id)
        await agents.bump_versions(session, runtime.config_cache, company_id, linked, knowledge=True)
        await outbox.record(session, company_id, "knowledge.document.ready",
                            {"source_id": source_id, "chunk_count": chunk_count, "embedding_model": model})


async def _discard(runtime: Runtime, company_id: uuid.UUID, source_id: uuid.UUID, set_id: uuid.UUID) -> None:
    async with runtime.database.session() as session:
        await session.execute(delete(KnowledgeChunkSet).where(KnowledgeChunkSet.id == set_id))
        live = await session.scalar(select(KnowledgeChunkSet.id).where(
            KnowledgeChunkSet.source_id == source_id, KnowledgeChunkSet.status == "active"))
        await session.execute(update(KnowledgeSource).where(
            KnowledgeSource.id == source_id, KnowledgeSource.company_id == company_id).values(
            status="ready" if live else "failed"))
        await outbox.record(session, company_id, "knowledge.document.failed",
                            {"source_id": source_id, "previous_index_kept": live is not None})


async def build_chunk_set(runtime: Runtime, *, company_id: uuid.UUID, source_id: uuid.UUID, chunks: list[Chunk],
                          spec: EmbeddingModelSpec, created_by: str | None = None,
                          progress: ProgressCallback | None = None, documents: int = 0) -> IngestOutcome:
    """Embed `chunks` with `spec`'s model into a new set and make it the source's live set."""
    if not chunks:
        raise NothingToIndex("the input holds no text to index")
    async with runtime.database.session() as session:
        chunk_set = KnowledgeChunkSet(company_id=company_id, source_id=source_id, embedding_model=spec.name,
                                      dimensions=spec.dimensions, status="building", created_by=created_by)
        session.add(chunk_set)
        await session.execute(update(KnowledgeSource).where(KnowledgeSource.id == source_id)
                              .values(status="ingesting"))
        await session.flush()
        set_id = chunk_set.id
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
            if progress is not None:
                await progress(Progress("embedding", embedded, len(chunks)))
        await _activate(runtime, company_id, source_id, set_id, spec.name, len(chunks))
    except BaseException as exc:
        if not pending.done():
            pending.cancel()
        await asyncio.shield(_discard(runtime, company_id, source_id, set_id))
        if isinstance(exc, IngestionFailed | EmbeddingFailed | asyncio.CancelledError):
            raise
        if isinstance(exc, Exception):
            logger.warning("embedding failed", extra={"source_id": str(source_id), "error": type(exc).__name__})
            raise IngestionFailed(f"embedding failed: {type(exc).__name__}: {exc}") from exc
        raise
    runtime.telemetry.metrics.record_ingested_chunks(embedded, spec.name)
    if progress is not None:
        await progress(Progress("done", len(chunks), len(chunks)))
    return IngestOutcome(source_id, set_id, spec.name, documents, len(chunks), embedded)


async def ingest_documents(runtime: Runtime, *, company_id: uuid.UUID, source_id: uuid.UUID,
                           documents: Sequence[SourceDocument], embedding_model: str,
                           created_by: str | None = None,
                           progress: ProgressCallback | None = None) -> IngestOutcome:
    """The one ingestion path: files, pages, agent documents and the benchmark all come through here."""
    spec = runtime.embedder.spec(embedding_model)
    chunker = chunker_for(runtime)

    def split_all() -> list[Chunk]:
        return [chunk for document in documents for chunk in chunker.split(document)]

    if progress is not None:
        await progress(Progress("chunking", 0, len(documents)))
    chunks = await asyncio.to_thread(split_all)
    return await build_chunk_set(runtime, company_id=company_id, source_id=source_id, chunks=chunks, spec=spec,
                                 created_by=created_by, progress=progress, documents=len(documents))


async def live_chunks(runtime: Runtime, company_id: uuid.UUID, source_id: uuid.UUID) -> list[Chunk]:
    """The source's live chunks, in document order (what a re-embed re-encodes)."""
    async with runtime.database.session() as session:
        rows = (await session.execute(
            select(KnowledgeChunk.document_ref, KnowledgeChunk.position, KnowledgeChunk.heading_path,
                   KnowledgeChunk.text, KnowledgeChunk.token_count)
            .join(KnowledgeChunkSet, KnowledgeChunkSet.id == KnowledgeChunk.set_id)
            .where(KnowledgeChunkSet.source_id == source_id, KnowledgeChunkSet.company_id == company_id,
                   KnowledgeChunkSet.status == "active")
            .order_by(KnowledgeChunk.document_ref, KnowledgeChunk.position))).all()
    return [Chunk(r.document_ref, r.position, list(r.heading_path), r.text, r.token_count) for r in rows]


async def reembed(runtime: Runtime, *, company_id: uuid.UUID, source_id: uuid.UUID, embedding_model: str,
                  created_by: str | None = None, progress: ProgressCallback | None = None) -> IngestOutcome:
    spec = runtime.embedder.spec(embedding_model)
    chunks = await live_chunks(runtime, company_id, source_id)
    if not chunks:
        raise NothingToIndex("the source has no chunks to re-embed; ingest something first")
    return await build_chunk_set(runtime, company_id=company_id, source_id=source_id, chunks=chunks, spec=spec,
                                 created_by=created_by, progress=progress)
