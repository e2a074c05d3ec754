"""Hybrid retrieval over an agent's knowledge: pgvector (HNSW) + PostgreSQL full-text search, fused.

Both searches run inside one REPEATABLE READ transaction, so they read the same snapshot of the
live chunk sets (one per document of each source): a swap committed in between cannot mix a
document's old and new set. Each hit names its document, so a reply can cite it. A query is
embedded once per embedding model in use among the agent's sources, and each dense search only
compares against chunks of that model (vectors of different models never meet).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import uuid
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from sqlalchemy import FLOAT, TEXT, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.db.models import KnowledgeChunkSet, KnowledgeDocument
from cortex.embeddings.errors import EmbeddingFailed
from cortex.kit.runtime import Runtime
from cortex.pipeline.ports import KnowledgeChunk

logger = logging.getLogger(__name__)

SearchMode = Literal["hybrid", "dense", "lexical"]
# Model name → dimensions of its partial HNSW index (migration 0002_knowledge). Names are inlined in
# the SQL (never user text) so that the planner can match the partial index's predicate.
INDEXED_MODELS = {"minilm": 384, "bge-m3": 1024, "openai": 1536, "cohere": 1024}
_WORD = re.compile(r"\w+", re.UNICODE)
_MAX_QUERY_WORDS = 64


@dataclass(frozen=True)
class RetrievalTuning:
    """Knobs measured by bench/retrieval_scifact.py (SciFact train, 809 queries, nDCG@10, 200 candidates
    per list): plain RRF 0.721, RRF 0.4 dense 0.724, RRF 0.7 dense 0.714, min-max weighted 0.5 dense
    0.734 (full-text: idf ranking, headings unweighted); the retriever's default ("by_script") 0.728.
    Min-max is used only where the model reads the query: on a short list it maps the worst dense hit
    to 0 however close it is, so a model that is blind to a language (MiniLM and Arabic) would outvote
    an exact full-text match; reciprocal ranks do not."""

    # "by_script": min-max weighted fusion (weighted_dense_weight) when every embedding model searched
    # reads the query's script, reciprocal ranks (dense_weight) otherwise — MiniLM reads Latin script only.
    fusion: Literal["rrf", "weighted", "by_script"] = "by_script"
    weighted_dense_weight: float = 0.6
    rrf_k: int = 60
    # Share of the dense list in the fused score (RRF: weight of its reciprocal ranks; weighted:
    # weight of its min-max normalised scores). 0.5 is plain, unweighted fusion. SciFact's claims share
    # their words with the abstracts, so it prefers lexical (RRF 0.4: 0.724); customers paraphrase ("when
    # do you open?" for a chunk about opening hours), which the dense list catches, so it keeps the lead.
    dense_weight: float = 0.7
    # Candidates each list contributes to the fusion (at least top_k).
    candidates: int = 100
    # ts_rank weights for {D, C, B, A}: headings are weight A, body text B. Equal: on the whole SciFact
    # corpus a heavier title (A=1.0) cost idf full-text search 0.05 nDCG@10 (0.632 against 0.682).
    lexical_weights: tuple[float, float, float, float] = (0.1, 0.2, 0.4, 0.4)
    # "idf": BM25-like, each query lexeme's ts_rank weighted by its inverse document frequency among
    # the searched chunks (so common words, which 'simple' keeps, count for little).
    rank_function: Literal["ts_rank", "ts_rank_cd", "idf"] = "idf"
    # ts_rank normalisation flags (1: divide by 1 + log(length)).
    rank_normalization: int = 1
    # The English configuration (stemming, stop words) and the language-neutral one ('simple', which
    # is what makes Arabic and other languages match) are both searched; these weigh their ranks.
    english_weight: float = 1.0
    simple_weight: float = 1.0
    hnsw_ef_search: int = 100
    # Query handling for full-text search: any word may match ("or"), or all must ("and", websearch's
    # default, which long customer messages rarely satisfy).
    query_operator: Literal["or", "and"] = "or"
    # idf ranking scores only chunks holding one of the query's rarest lexemes, adding lexemes rarest
    # first while their summed document frequencies stay under this budget (10**9: rank every match).
    lexical_candidate_postings: int = 3000


@dataclass(frozen=True)
class ScoredChunk:
    chunk_id: uuid.UUID
    source_id: uuid.UUID
    document_ref: str
    text: str
    heading_path: list[str]
    score: float
    set_id: uuid.UUID | None = None
    document_id: uuid.UUID | None = None
    document_name: str | None = None
    similarity: float | None = None  # cosine with the query, when the dense search found it

    def public(self) -> KnowledgeChunk:
        return KnowledgeChunk(self.chunk_id, self.source_id, self.text, list(self.heading_path), self.score,
                              self.document_id, self.document_name, self.similarity)


def query_words(query: str, operator: str = "or") -> str:
    """The query as OR-ed words for websearch_to_tsquery: a long customer message must not need every
    word to match, and websearch syntax (quotes, '-') in customer text must not become operators."""
    words = [w for w in _WORD.findall(query) if w.lower() != "or"][:_MAX_QUERY_WORDS]
    return (" or " if operator == "or" else " ").join(words)


def _vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(map(repr, vector.tolist())) + "]"


def _named(chunk: ScoredChunk, documents: dict[uuid.UUID, tuple[uuid.UUID, str]]) -> ScoredChunk:
    """The chunk with the document it comes from (read with the live sets, in the same snapshot)."""
    found = documents.get(chunk.set_id) if chunk.set_id is not None else None
    return replace(chunk, document_id=found[0], document_name=found[1]) if found else chunk


def _rows(result: Any, score_of: Any, dense: bool = False) -> list[ScoredChunk]:
    return [ScoredChunk(r.id, r.source_id, r.document_ref, r.text, list(r.heading_path), float(score_of(r)),
                        r.set_id, similarity=float(score_of(r)) if dense else None) for r in result]


def _remember(first: dict[uuid.UUID, ScoredChunk], chunk: ScoredChunk) -> None:
    """The fused list keeps one copy per chunk: the one carrying the dense search's cosine, if any."""
    kept = first.get(chunk.chunk_id)
    if kept is None or (kept.similarity is None and chunk.similarity is not None):
        first[chunk.chunk_id] = chunk


# Embedding models trained on many languages; MiniLM (all-MiniLM-L6-v2) was trained on English only.
MULTILINGUAL_MODELS = frozenset({"bge-m3", "openai", "cohere"})


def reads_script(model: str, query: str) -> bool:
    """Whether `model`'s vectors mean something for this query: for MiniLM, most of its letters Latin."""
    if model in MULTILINGUAL_MODELS:
        return True
    letters = [ch for ch in query if ch.isalpha()]
    return not letters or sum(ch < "\u0250" for ch in letters) * 2 >= len(letters)


def rrf(lists: list[tuple[list[ScoredChunk], float]], k: int) -> list[ScoredChunk]:
    scores: dict[uuid.UUID, float] = defaultdict(float)
    first: dict[uuid.UUID, ScoredChunk] = {}
    for ranked, weight in lists:
        for rank, chunk in enumerate(ranked, 1):
            scores[chunk.chunk_id] += weight / (k + rank)
            _remember(first, chunk)
    return sorted((replace(first[cid], score=s) for cid, s in scores.items()), key=lambda c: -c.score)


def weighted(lists: list[tuple[list[ScoredChunk], float]]) -> list[ScoredChunk]:
    """Convex combination of min-max normalised scores (a chunk absent from a list gets 0 there)."""
    scores: dict[uuid.UUID, float] = defaultdict(float)
    first: dict[uuid.UUID, ScoredChunk] = {}
    for ranked, weight in lists:
        if not ranked:
            continue
        top, bottom = max(c.score for c in ranked), min(c.score for c in ranked)
        span = top - bottom
        for chunk in ranked:
            scores[chunk.chunk_id] += weight * ((chunk.score - bottom) / span if span > 0 else 1.0)
            _remember(first, chunk)
    return sorted((replace(first[cid], score=s) for cid, s in scores.items()), key=lambda c: -c.score)


class KnowledgeRetriever:
    """The Context Engine's KnowledgePort, and the search endpoint's engine (one code path)."""

    available = True

    def __init__(self, runtime: Runtime, tuning: RetrievalTuning | None = None) -> None:
        self.runtime = runtime
        self.tuning = tuning or RetrievalTuning()
        self.term_stats = TermStatsCache()

    async def retrieve(self, *, company_id: uuid.UUID, agent: Any, query: str, top_k: int,
                       warnings: list[str] | None = None) -> list[KnowledgeChunk]:
        chunks = await self.search(company_id=company_id, source_ids=list(agent.knowledge_source_ids),
                                   query=query, top_k=top_k, mode="hybrid", warnings=warnings)
        return [c.public() for c in chunks]

    async def _live_models(self, company_id: uuid.UUID, source_ids: list[uuid.UUID]) -> set[str]:
        async with self.runtime.database.session() as session:
            models = await session.scalars(select(KnowledgeChunkSet.embedding_model).distinct().where(
                KnowledgeChunkSet.company_id == company_id, KnowledgeChunkSet.source_id.in_(source_ids),
                KnowledgeChunkSet.status == "active"))
            return set(models)

    async def search(self, *, company_id: uuid.UUID, source_ids: list[uuid.UUID], query: str, top_k: int,
                     mode: SearchMode = "hybrid", tuning: RetrievalTuning | None = None,
                     warnings: list[str] | None = None) -> list[ScoredChunk]:
        """`warnings` (when given) receives what degraded this search, e.g. a query embedding that failed:
        dense retrieval then falls back to full-text search rather than to nothing."""
        tuning = tuning or self.tuning
        said = warnings if warnings is not None else []
        if not source_ids or not query.strip() or top_k <= 0:
            return []
        candidates = max(tuning.candidates, top_k)
        # One cheap lookup first: an agent whose sources have no live chunk set costs the chat no query
        # embedding and no search (and an agent with no linked source costs no SQL at all, above).
        live_models = await self._live_models(company_id, source_ids)
        if not live_models:
            return []
        vectors: dict[str, np.ndarray | None] = {}
        if mode != "lexical":
            # Embedded before the transaction opens, so no connection is held while the model runs.
            for model in live_models:
                vectors[model] = await self._embed_query(query, model, said)
        async with self.runtime.database.session() as session:
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            live = (await session.execute(
                select(KnowledgeChunkSet.id, KnowledgeChunkSet.embedding_model, KnowledgeDocument.id,
                       KnowledgeDocument.name)
                .join(KnowledgeDocument, KnowledgeDocument.id == KnowledgeChunkSet.document_id)
                .where(KnowledgeChunkSet.company_id == company_id, KnowledgeChunkSet.source_id.in_(source_ids),
                       KnowledgeChunkSet.status == "active"))).all()
            if not live:
                return []
            documents = {set_id: (document_id, name) for set_id, _, document_id, name in live}
            lists: list[tuple[list[ScoredChunk], float]] = []
            if mode != "lexical":
                by_model: dict[str, list[uuid.UUID]] = defaultdict(list)
                for set_id, model, _, _ in live:
                    by_model[model].append(set_id)
                dense: list[ScoredChunk] = []
                for model, set_ids in by_model.items():
                    if model not in vectors:  # a set with another model went live since the lookup above
                        vectors[model] = await self._embed_query(query, model, said)
                    vector = vectors[model]
                    if vector is None:
                        continue
                    dense.extend(await self._dense(session, model, vector, set_ids, candidates, tuning))
                dense.sort(key=lambda c: -c.score)
                if any(vector is not None for vector in vectors.values()):
                    lists.append((dense[:candidates], tuning.dense_weight))
            # No query vector at all: full-text search answers alone, in dense mode too.
            if mode != "dense" or not lists:
                lexical = await self._lexical(session, query, [row[0] for row in live], candidates, tuning)
                lists.append((lexical, 1.0 - tuning.dense_weight))
        return [_named(chunk, documents) for chunk in self._fuse(lists, query, vectors, tuning)[:top_k]]

    @staticmethod
    def _fuse(lists: list[tuple[list[ScoredChunk], float]], query: str, vectors: dict[str, np.ndarray | None],
              tuning: RetrievalTuning) -> list[ScoredChunk]:
        if len(lists) == 1:
            return lists[0][0]
        if tuning.fusion == "by_script" and all(reads_script(model, query) for model in vectors):
            (dense_list, _), (lexical_list, _) = lists
            share = tuning.weighted_dense_weight
            return weighted([(dense_list, share), (lexical_list, 1.0 - share)])
        if tuning.fusion == "weighted":
            return weighted(lists)
        return rrf(lists, tuning.rrf_k)

    async def _embed_query(self, query: str, model: str, warnings: list[str]) -> np.ndarray | None:
        """None when the model cannot embed right now (a hosted provider down), said in `warnings`: the
        chunks of that model are then found by full-text search alone rather than failing the chat."""
        try:
            return await self.runtime.embedder.embed_query(query, model)
        except Exception as exc:  # LiteLLM and sentence-transformers raise many types
            logger.warning("query embedding failed; lexical only", extra={"model": model,
                                                                         "error": type(exc).__name__})
            reason = exc.detail if isinstance(exc, EmbeddingFailed) else f"embedding model {model} failed"
            warning = f"dense retrieval unavailable: {reason}; full-text results only"
            if warning not in warnings:
                warnings.append(warning)
            return None

    async def _dense(self, session: AsyncSession, model: str, vector: np.ndarray, set_ids: list[uuid.UUID],
                     limit: int, tuning: RetrievalTuning) -> list[ScoredChunk]:
        dims = INDEXED_MODELS.get(model)
        if dims is None or vector.shape != (dims,):
            raise ValueError(f"no vector index for model {model!r} with {vector.shape} dimensions")
        # Iterative scans keep walking the HNSW graph until enough rows pass the set filter.
        await session.execute(text("SELECT set_config('hnsw.ef_search', :ef, true), "
                                   "set_config('hnsw.iterative_scan', 'relaxed_order', true)"),
                              {"ef": str(max(tuning.hnsw_ef_search, limit))})
        distance = f"(c.embedding::vector({dims}) <=> CAST(CAST(:q AS text) AS vector({dims})))"
        statement = text(
            f"SELECT c.id, c.source_id, c.set_id, c.document_ref, c.text, c.heading_path, {distance} AS distance "
            f"FROM knowledge_chunks c WHERE c.embedding_model = '{model}' AND c.set_id = ANY(:set_ids) "
            f"ORDER BY {distance} LIMIT :limit"
        ).bindparams(bindparam("set_ids", type_=ARRAY(UUID(as_uuid=True))))
        result = await session.execute(statement, {"q": _vector_literal(vector), "set_ids": set_ids,
                                                    "limit": limit})
        return sorted(_rows(result, lambda r: 1.0 - r.distance, dense=True), key=lambda c: -c.score)

    async def _lexical(self, session: AsyncSession, query: str, set_ids: list[uuid.UUID], limit: int,
                       tuning: RetrievalTuning) -> list[ScoredChunk]:
        words = query_words(query, tuning.query_operator)
        if not words:
            return []
        if tuning.rank_function == "idf":
            return await self._lexical_idf(session, query, set_ids, limit, tuning)
        rank = "ts_rank_cd" if tuning.rank_function == "ts_rank_cd" else "ts_rank"
        weights = "'{" + ",".join(f"{w:g}" for w in tuning.lexical_weights) + "}'::float4[]"
        statement = text(
            "WITH q AS (SELECT websearch_to_tsquery('simple', :words) AS qs, "
            "websearch_to_tsquery('english', :words) AS qe) "
            "SELECT c.id, c.source_id, c.set_id, c.document_ref, c.text, c.heading_path, "
            f"(:we * {rank}({weights}, c.tsv_english, q.qe, :norm) "
            f"+ :ws * {rank}({weights}, c.tsv_simple, q.qs, :norm)) AS score "
            "FROM knowledge_chunks c, q WHERE c.set_id = ANY(:set_ids) "
            "AND (c.tsv_simple @@ q.qs OR c.tsv_english @@ q.qe) ORDER BY score DESC LIMIT :limit"
        ).bindparams(bindparam("set_ids", type_=ARRAY(UUID(as_uuid=True))))
        result = await session.execute(statement, {
            "words": words, "we": tuning.english_weight, "ws": tuning.simple_weight,
            "norm": tuning.rank_normalization, "set_ids": set_ids, "limit": limit})
        return _rows(result, lambda r: r.score)

    async def _lexical_idf(self, session: AsyncSession, query: str, set_ids: list[uuid.UUID], limit: int,
                           tuning: RetrievalTuning) -> list[ScoredChunk]:
        """BM25's shape with ts_rank as the term-frequency saturation: each chunk scores the sum, over the
        query lexemes it holds, of idf * ts_rank. Document frequencies come from the per-set statistics
        cache (chunk sets are immutable), so no query counts postings. Only chunks holding one of the
        query's rarer lexemes are ranked (WAND-like): a common word's GIN posting list can cover most of
        the corpus, and ranking all of it is what made this search slow."""
        configs = [(config, column, weight) for config, column, weight in (
            ("english", "tsv_english", tuning.english_weight), ("simple", "tsv_simple", tuning.simple_weight))
            if weight > 0]
        if not configs:
            return []
        lexemes = (await session.execute(text(
            "SELECT array(SELECT lexeme FROM unnest(to_tsvector('english', :q))) AS english, "
            "array(SELECT lexeme FROM unnest(to_tsvector('simple', :q))) AS simple"),
            {"q": query[:4_000]})).one()
        stats = await self.term_stats.get(session, set_ids)
        n = sum(s.chunks for s in stats)
        terms: dict[str, list[tuple[str, float]]] = {}
        postings: list[tuple[int, str, str]] = []
        for config, _, weight in configs:
            terms[config] = []
            for lexeme in getattr(lexemes, config):
                df = sum(s.df[config].get(lexeme, 0) for s in stats)
                if df == 0:
                    continue  # matches no chunk: contributes nothing
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                terms[config].append((_tsquery_lexeme(lexeme), weight * idf))
                postings.append((df, config, lexeme))
        if not postings:
            return []
        # Candidates: chunks holding any of the rarest lexemes, adding lexemes (rarest first) while their
        # summed posting lengths stay within the budget; the rarest is always in.
        postings.sort()
        chosen: dict[str, list[str]] = defaultdict(list)
        total = 0
        for df, config, lexeme in postings:
            if chosen and total + df > tuning.lexical_candidate_postings:
                break
            total += df
            chosen[config].append(_tsquery_lexeme(lexeme))
        weights = "'{" + ",".join(f"{w:g}" for w in tuning.lexical_weights) + "}'::float4[]"
        params: dict[str, Any] = {"set_ids": set_ids, "limit": limit, "norm": tuning.rank_normalization}
        score_parts, filters = [], []
        binds: list[Any] = [bindparam("set_ids", type_=ARRAY(UUID(as_uuid=True)))]
        for config, column, _ in configs:
            if terms[config]:
                params[f"q_{config}"] = [t[0] for t in terms[config]]
                params[f"w_{config}"] = [t[1] for t in terms[config]]
                binds += [bindparam(f"q_{config}", type_=ARRAY(TEXT())), bindparam(f"w_{config}", type_=ARRAY(FLOAT()))]
                score_parts.append(
                    f"coalesce((SELECT sum(t.w * ts_rank({weights}, c.{column}, t.q, :norm)) "
                    f"FROM unnest(CAST(:q_{config} AS tsquery[]), :w_{config}) AS t(q, w) "
                    f"WHERE c.{column} @@ t.q), 0)")
            if chosen.get(config):
                params[f"c_{config}"] = " | ".join(chosen[config])
                filters.append(f"c.{column} @@ CAST(:c_{config} AS tsquery)")
        statement = text(
            f"SELECT c.id, c.source_id, c.set_id, c.document_ref, c.text, c.heading_path, "
            f"({' + '.join(score_parts)}) AS score "
            f"FROM knowledge_chunks c WHERE c.set_id = ANY(:set_ids) AND ({' OR '.join(filters)}) "
            "ORDER BY score DESC LIMIT :limit"
        ).bindparams(*binds)
        result = await session.execute(statement, params)
        return _rows(result, lambda r: r.score)


def _tsquery_lexeme(lexeme: str) -> str:
    """A lexeme as one quoted tsquery operand (no normalisation: it matches the stored lexeme as is)."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


@dataclass(frozen=True)
class SetTermStats:
    chunks: int
    df: dict[str, dict[str, int]]  # configuration → lexeme → number of chunks holding it


class TermStatsCache:
    """Document frequencies per chunk set, read once with ts_stat and kept: a chunk set never changes
    after it is written (re-ingestion writes a new set), so its statistics never go stale. LRU, bounded by
    the lexemes held rather than by sets: a source has a set per document, and a search reads them all."""

    def __init__(self, max_lexemes: int = 2_000_000) -> None:
        self.max_lexemes = max_lexemes
        self._sets: OrderedDict[uuid.UUID, SetTermStats] = OrderedDict()
        self._held = 0
        self._lock = asyncio.Lock()

    @staticmethod
    def _size(stats: SetTermStats) -> int:
        return sum(len(lexemes) for lexemes in stats.df.values())

    async def get(self, session: AsyncSession, set_ids: list[uuid.UUID]) -> list[SetTermStats]:
        found = []
        for set_id in set_ids:
            stats = self._sets.get(set_id)
            if stats is None:
                async with self._lock:  # concurrent first queries read a set's statistics once
                    stats = self._sets.get(set_id)
                    if stats is None:
                        stats = await self._load(session, set_id)
                        self._sets[set_id] = stats
                        self._held += self._size(stats)
                    # The sets of this search stay (it needs them all); older ones go first.
                    while self._held > self.max_lexemes and len(self._sets) > 1:
                        oldest, evicted = next(iter(self._sets.items()))
                        if oldest in set_ids:
                            break
                        del self._sets[oldest]
                        self._held -= self._size(evicted)
            else:
                self._sets.move_to_end(set_id)
            found.append(stats)
        return found

    @staticmethod
    async def _load(session: AsyncSession, set_id: uuid.UUID) -> SetTermStats:
        chunks = (await session.execute(text("SELECT count(*) FROM knowledge_chunks WHERE set_id = :s"),
                                        {"s": set_id})).scalar_one()
        df: dict[str, dict[str, int]] = {}
        for config, column in (("english", "tsv_english"), ("simple", "tsv_simple")):
            # ts_stat takes its query as text; the set id is a UUID formatted here, never user input.
            rows = await session.execute(text(
                f"SELECT word, ndoc FROM ts_stat('SELECT {column} FROM knowledge_chunks "
                f"WHERE set_id = ''{uuid.UUID(str(set_id))}''')"))
            df[config] = {word: ndoc for word, ndoc in rows}
        return SetTermStats(int(chunks), df)
