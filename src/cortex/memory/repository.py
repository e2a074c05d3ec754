"""Every query over customer facts: storing with dedupe and supersede, recall, listing, forgetting.

A customer is `(company_id, customer_id)`: the company's own ids are only unique inside it, so every
statement here filters by both.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import numpy as np
from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import Float, and_, bindparam, delete, func, literal, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.db.models import (
    MEMORY_EMBEDDING_DIMENSIONS,
    Conversation,
    KnowledgeChunk,
    KnowledgeChunkSet,
    KnowledgeSource,
    Message,
)
from cortex.db.models import MemoryFact as FactRow
from cortex.events import outbox
from cortex.kit.pagination import Listing, Page, PageParams, paginate
from cortex.memory.concepts import concepts_of, fact_concepts
from cortex.memory.schemas import FactListed
from cortex.pipeline.token_optimizer import count

# Two facts this close (cosine) about the same values are the same fact said twice.
DUPLICATE_SIMILARITY = 0.9
# How many nearest facts recall considers, before standing preferences and identifier matches join.
SEMANTIC_CANDIDATES = 30
IDENTIFIER_CANDIDATES = 8
STANDING_PREFERENCES = 5
# A shared identifier (order number, phone, email) is strong evidence the fact is the one asked about.
IDENTIFIER_BOOST = 0.35
# A fact whose subject names a concept of the message (cortex.memory.concepts) gets this much extra
# score per shared concept, unless more than CONCEPT_MAX_FACTS of the customer's facts share it.
CONCEPT_BOOST = 0.1
CONCEPT_MAX_FACTS = 10
# Below this similarity a fact is not about the message; standing preferences are recalled anyway.
MIN_RELEVANCE = 0.2
# How much a match on the subject's words counts against a match on the whole fact (see
# MemoryFact.subject_embedding); measured in bench/memory_recall.py.
SUBJECT_WEIGHT = 1.0
# Relevance against diversity when ordering the relevant facts (1.0: relevance only); measured in the
# benchmark.
DIVERSITY_LAMBDA = 0.6
# Events (category history: orders, calls, visits) pile up by the hundred; a follow-up question is more
# often about one of the customer's standing attributes, so those get this much extra score. 0.1 was
# chosen over 0.05 on the benchmark's dev and held-out families (both improved; see bench/memory_recall.py).
ATTRIBUTE_PRIOR = 0.1
# No-query ordering: confidence weighted by how recently the fact was last confirmed.
RECENCY_HALF_LIFE_DAYS = 90.0

_IDENTIFIER = re.compile(r"[\w@.+-]*\d[\w@.+-]*|[\w.+-]+@[\w-]+\.[\w.]+", re.UNICODE)
_SPACE = re.compile(r"\s+")
_SUBJECT = re.compile(r"[^\w]+", re.UNICODE)


def identifiers(text_: str) -> frozenset[str]:
    """Tokens that name one thing exactly: anything holding a digit, and e-mail addresses."""
    found = {match.group(0).strip(".-+").lower() for match in _IDENTIFIER.finditer(text_)}
    return frozenset(token for token in found if len(token) >= 3)


def count_tokens(fact: str) -> int:
    """The fact's tokens as recall's budget counts them (the default tokenizer), stored with the fact."""
    return count("", fact)


def normalise_text(text_: str) -> str:
    return _SPACE.sub(" ", text_).strip().rstrip(".!").casefold()


def normalise_subject(subject: str | None) -> str | None:
    if not subject:
        return None
    key = _SUBJECT.sub("_", subject.casefold()).strip("_")
    return key[:120] or None


def subject_words(subject: str) -> str:
    """`home_address` → `home address`: the text whose embedding stands for the subject."""
    return subject.replace("_", " ").strip()


@dataclass(frozen=True)
class NewFact:
    fact: str
    category: str
    confidence: float
    embedding: np.ndarray
    source: str
    agent_id: uuid.UUID | None = None
    subject: str | None = None
    value: str | None = None
    source_message_id: uuid.UUID | None = None
    subject_embedding: np.ndarray | None = None


@dataclass(frozen=True)
class StoreOutcome:
    fact_id: uuid.UUID
    action: Literal["created", "confirmed"]
    superseded: tuple[uuid.UUID, ...] = ()


@dataclass(frozen=True)
class RecalledFact:
    id: uuid.UUID
    fact: str
    category: str
    confidence: float
    score: float
    similarity: float
    token_count: int | None = None


def _vector(embedding: np.ndarray) -> list[float]:
    return [float(x) for x in embedding]


def _scope(company_id: uuid.UUID, customer_id: str) -> Any:
    return and_(FactRow.company_id == company_id, FactRow.customer_id == customer_id)


async def lock_customer(session: AsyncSession, company_id: uuid.UUID, customer_id: str) -> None:
    """Serialises writers of one customer's facts (two turns extracted at once must not both insert)."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                          {"key": f"memory:{company_id}:{customer_id}"})


async def store_fact(session: AsyncSession, *, company_id: uuid.UUID, customer_id: str,
                     new: NewFact) -> StoreOutcome:
    """Insert `new`, unless it repeats an active fact (then that one is confirmed); a new value for the
    same subject supersedes the facts that held the old one. Caller holds `lock_customer`."""
    now = datetime.now(UTC)
    in_scope = and_(_scope(company_id, customer_id), FactRow.superseded_by.is_(None),
                    FactRow.agent_id.is_not_distinct_from(new.agent_id))
    subject = normalise_subject(new.subject)
    same_subject: list[FactRow] = []
    if subject is not None:
        same_subject = list(await session.scalars(select(FactRow).where(in_scope, FactRow.subject == subject)))
    duplicate = next((row for row in same_subject
                      if normalise_text(row.value or "") == normalise_text(new.value or "")), None)
    if duplicate is None:
        distance = FactRow.embedding.cosine_distance(_vector(new.embedding))
        nearest = (await session.execute(
            select(FactRow, (1 - distance).label("similarity")).where(in_scope).order_by(distance).limit(3)
        )).all()
        new_ids, new_text = identifiers(new.fact), normalise_text(new.fact)
        for row, similarity in nearest:
            if row in same_subject:
                continue  # same subject, other value: a contradiction, handled below
            if normalise_text(row.fact) == new_text or (
                    similarity >= DUPLICATE_SIMILARITY and identifiers(row.fact) == new_ids):
                duplicate = row
                break
    if duplicate is not None:
        duplicate.last_confirmed_at = now
        duplicate.confidence = max(duplicate.confidence, new.confidence)
        await session.flush()
        return StoreOutcome(duplicate.id, "confirmed")
    row = FactRow(company_id=company_id, customer_id=customer_id, agent_id=new.agent_id, fact=new.fact,
                  category=new.category, confidence=new.confidence, subject=subject, value=new.value,
                  embedding=_vector(new.embedding), source=new.source, source_message_id=new.source_message_id,
                  subject_embedding=None if new.subject_embedding is None else _vector(new.subject_embedding),
                  token_count=count_tokens(new.fact), concepts=fact_concepts(subject, new.fact),
                  last_confirmed_at=now)
    session.add(row)
    await session.flush()
    for old in same_subject:
        old.superseded_by, old.superseded_at = row.id, now
    await session.flush()
    # Ids and the category only: the fact's text stays out of events and webhooks.
    about = {"customer_id": customer_id, "agent_id": new.agent_id}
    await outbox.record(session, company_id, "memory.fact.created",
                        {"fact_id": row.id, **about, "category": new.category, "source": new.source})
    for old in same_subject:
        await outbox.record(session, company_id, "memory.fact.superseded",
                            {"fact_id": old.id, "superseded_by": row.id, **about})
    return StoreOutcome(row.id, "created", tuple(old.id for old in same_subject))


def _similarity(query_vector: np.ndarray) -> Any:
    """The better of the fact's and its subject's similarity to the query (GREATEST skips NULLs)."""
    # One parameter used twice: the vector is formatted and sent once.
    vector = bindparam("query_vector", _vector(query_vector), type_=HALFVEC(MEMORY_EMBEDDING_DIMENSIONS))
    return func.greatest(1 - FactRow.embedding.cosine_distance(vector),
                         SUBJECT_WEIGHT * (1 - FactRow.subject_embedding.cosine_distance(vector)))


def _columns(query_vector: np.ndarray | None) -> list[Any]:
    similarity = (_similarity(query_vector).label("similarity") if query_vector is not None
                  else literal(0.0, Float).label("similarity"))
    return [FactRow.id, FactRow.fact, FactRow.category, FactRow.confidence, FactRow.last_confirmed_at, similarity]


def _active(company_id: uuid.UUID, customer_id: str, agent_id: uuid.UUID | None, all_agents: bool) -> Any:
    clauses = [_scope(company_id, customer_id), FactRow.superseded_by.is_(None)]
    if not all_agents:
        clauses.append(or_(FactRow.agent_id.is_(None), FactRow.agent_id == agent_id))
    return and_(*clauses)


def _recency_weight(confidence: float, last_confirmed_at: datetime, now: datetime) -> float:
    age_days = max(0.0, (now - last_confirmed_at).total_seconds() / 86_400)
    return confidence * math.pow(0.5, age_days / RECENCY_HALF_LIFE_DAYS)


# One round trip, one pass over the customer's rows through ix_memory_facts_customer (each similarity
# computed once): the nearest facts, the standing preferences, any fact naming an identifier of the
# query, and the facts whose subject names a concept of the query that few of the customer's facts
# share (a concept on hundreds of facts, like "store" on store visits, is no evidence). The scan keeps
# no vectors; only the candidates' embeddings leave the server, in halfvec's own binary form (decoded
# with one numpy call: a real[] becomes a Python float per dimension, ~1 ms per recall). A constant
# text with positional parameters, run on the asyncpg connection itself: asyncpg prepares it once per
# pooled connection and reuses the plan; no SQLAlchemy compilation or row objects on the hot path. No
# HNSW index: with a per-customer filter it may return fewer rows than asked (pgvector filters after
# the index scan), and an exact scan of one customer's thousand facts is ~1-4 ms (measured in
# bench/memory_recall.py). The query vector is converted once, in its own CTE: a cast of a parameter
# inside the scan would run per row under a generic plan.
RECALL_SQL = """
WITH query AS MATERIALIZED (SELECT CAST($1::real[] AS halfvec) AS vector
), scored AS MATERIALIZED (
    SELECT id, fact, category, confidence, last_confirmed_at, concepts,
           GREATEST(1 - (embedding <=> query.vector),
                    $2 * (1 - (subject_embedding <=> query.vector))) AS similarity
    FROM memory_facts CROSS JOIN query
    WHERE company_id = $3 AND customer_id = $4 AND superseded_by IS NULL
      AND ($5 OR agent_id IS NULL OR agent_id = $6)
), rare AS (
    SELECT coalesce(array_agg(c), CAST('{}' AS varchar[])) AS concepts FROM (
        SELECT c FROM scored, unnest(scored.concepts) AS c WHERE c = ANY($7::varchar[])
        GROUP BY c HAVING count(*) <= $8) AS counted
), picked AS (
    (SELECT id FROM scored ORDER BY similarity DESC LIMIT $9)
    UNION
    (SELECT id FROM scored WHERE category = 'preference' ORDER BY confidence DESC, last_confirmed_at DESC LIMIT $10)
    UNION
    (SELECT id FROM scored WHERE fact ILIKE ANY($11::text[]) ORDER BY similarity DESC LIMIT $12)
    UNION
    (SELECT id FROM scored, rare WHERE scored.concepts && rare.concepts ORDER BY similarity DESC LIMIT $12)
)
SELECT s.id, s.fact, s.category, s.confidence, s.similarity, f.token_count,
       cardinality(ARRAY(SELECT unnest(s.concepts) INTERSECT SELECT unnest(rare.concepts))) AS concept_matches,
       halfvec_send(f.embedding) AS vector
FROM scored AS s JOIN picked USING (id) JOIN memory_facts AS f USING (id) CROSS JOIN rare
"""


def _like_pattern(token: str) -> str:
    return "%" + token.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def recall_arguments(*, company_id: uuid.UUID, customer_id: str, agent_id: uuid.UUID | None, query: str,
                     query_vector: np.ndarray, all_agents: bool = False) -> tuple[Any, ...]:
    """RECALL_SQL's positional parameters, in order."""
    return (np.asarray(query_vector, dtype=np.float32).tolist(), SUBJECT_WEIGHT, company_id, customer_id,
            all_agents, agent_id, sorted(concepts_of(query)) if CONCEPT_BOOST else [], CONCEPT_MAX_FACTS,
            SEMANTIC_CANDIDATES, STANDING_PREFERENCES, [_like_pattern(t) for t in sorted(identifiers(query))],
            IDENTIFIER_CANDIDATES)


class Fetcher(Protocol):
    async def fetch(self, query: str, *args: Any) -> list[Any]: ...

    async def fetchval(self, query: str, *args: Any) -> Any: ...


# Most chats come from customers with nothing remembered yet: one index probe spares them the query
# embedding (~10 ms of CPU here) and the recall statement.
HAS_RECALLABLE_FACTS_SQL = """
SELECT EXISTS (SELECT 1 FROM memory_facts
               WHERE company_id = $1 AND customer_id = $2 AND superseded_by IS NULL
                 AND (agent_id IS NULL OR agent_id = $3))
"""


async def has_recallable_facts(connection: Fetcher, *, company_id: uuid.UUID, customer_id: str,
                               agent_id: uuid.UUID | None) -> bool:
    return bool(await connection.fetchval(HAS_RECALLABLE_FACTS_SQL, company_id, customer_id, agent_id))


async def recall(connection: Fetcher, *, company_id: uuid.UUID, customer_id: str, agent_id: uuid.UUID | None,
                 query: str, query_vector: np.ndarray, all_agents: bool = False) -> list[RecalledFact]:
    """The facts about `query`, relevant and diverse first, then the customer's standing preferences.

    `connection` is an asyncpg connection (the pool's driver connection, outside any transaction)."""
    arguments = recall_arguments(company_id=company_id, customer_id=customer_id, agent_id=agent_id, query=query,
                                 query_vector=query_vector, all_agents=all_agents)
    rows = await connection.fetch(RECALL_SQL, *arguments)
    wanted = identifiers(query)
    relevant: list[RecalledFact] = []
    vectors: list[bytes] = []
    standing: list[RecalledFact] = []
    for fact_id, fact, category, confidence, similarity, tokens, concept_matches, vector in rows:
        shared = bool(wanted) and bool(wanted & identifiers(fact))
        score = (similarity + (IDENTIFIER_BOOST if shared else 0.0) + CONCEPT_BOOST * concept_matches
                 + (ATTRIBUTE_PRIOR if category != "history" else 0.0))
        recalled = RecalledFact(fact_id, fact, category, confidence, score, similarity, tokens)
        if shared or concept_matches or similarity >= MIN_RELEVANCE:
            relevant.append(recalled)
            vectors.append(vector)
        elif category == "preference":
            standing.append(recalled)
    ranked = diversify(relevant, vectors)
    # Standing preferences that are not about this message still come, after the relevant facts.
    return ranked + sorted(standing, key=lambda f: f.confidence, reverse=True)


def halfvec_matrix(vectors: list[bytes]) -> np.ndarray:
    """Rows of halfvec_send() output (int16 dimensions, int16 unused, big-endian float16s) as float32."""
    raw = np.frombuffer(b"".join(vectors), dtype=np.uint8).reshape(len(vectors), -1)[:, 4:]
    return np.ascontiguousarray(raw).view(">f2").astype(np.float32)


def diversify(facts: list[RecalledFact], vectors: list[bytes]) -> list[RecalledFact]:
    """Maximal marginal relevance: a customer's hundred store visits must not fill every slot ahead of
    the one fact about their wheelchair. Each pick maximises
    `DIVERSITY_LAMBDA * score - (1 - DIVERSITY_LAMBDA) * (similarity to the closest fact already picked)`."""
    if len(facts) <= 1 or DIVERSITY_LAMBDA >= 1.0:
        return sorted(facts, key=lambda f: f.score, reverse=True)
    matrix = halfvec_matrix(vectors)
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    pairwise = matrix @ matrix.T
    marginal = DIVERSITY_LAMBDA * np.asarray([fact.score for fact in facts], dtype=np.float32)
    penalty = np.zeros(len(facts), dtype=np.float32)
    taken = np.zeros(len(facts), dtype=bool)
    order: list[int] = []
    for _ in range(len(facts)):
        pick = int(np.argmax(np.where(taken, -np.inf, marginal - penalty)))
        order.append(pick)
        taken[pick] = True
        penalty = np.maximum(penalty, (1 - DIVERSITY_LAMBDA) * np.maximum(pairwise[pick], 0))
    return [facts[i] for i in order]


async def list_facts(session: AsyncSession, *, company_id: uuid.UUID, customer_id: str,
                     query_vector: np.ndarray | None, query: str | None, limit: int) -> list[RecalledFact]:
    """The API's view over every agent scope. With a query: first what Memory Recall would hand the
    prompt for that message, in its order, then the other facts by similarity; else by recency and
    confidence."""
    if query_vector is not None and query is not None:
        connection = await session.connection()
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        ranked = (await recall(driver, company_id=company_id, customer_id=customer_id, agent_id=None, query=query,
                               query_vector=query_vector, all_agents=True))[:limit]
        if len(ranked) == limit:
            return ranked
        where = and_(_active(company_id, customer_id, None, True), FactRow.id.not_in([f.id for f in ranked]))
        rows = (await session.execute(select(*_columns(query_vector)).where(where)
                                      .order_by(_similarity(query_vector).desc()).limit(limit - len(ranked)))).all()
        return ranked + [RecalledFact(i, f, c, float(conf), float(sim), float(sim)) for i, f, c, conf, _, sim in rows]
    now = datetime.now(UTC)
    age_days = func.extract("epoch", func.now() - FactRow.last_confirmed_at) / 86_400
    weight = FactRow.confidence * func.power(0.5, age_days / RECENCY_HALF_LIFE_DAYS)
    rows = (await session.execute(
        select(*_columns(None)).where(_active(company_id, customer_id, None, True))
        .order_by(weight.desc(), FactRow.last_confirmed_at.desc(), FactRow.id).limit(limit)
    )).all()
    return [RecalledFact(i, f, c, float(conf), _recency_weight(float(conf), confirmed, now), 0.0)
            for i, f, c, conf, confirmed, _ in rows]


async def count_active(session: AsyncSession, company_id: uuid.UUID, customer_id: str) -> int:
    total = await session.scalar(select(func.count()).select_from(FactRow)
                                 .where(_active(company_id, customer_id, None, True)))
    return int(total or 0)


async def customer_documents(session: AsyncSession, company_id: uuid.UUID, customer_id: str) -> list[KnowledgeSource]:
    """Knowledge sources a company tagged as this customer's (`metadata.customer_id`)."""
    return list(await session.scalars(
        select(KnowledgeSource).where(KnowledgeSource.company_id == company_id,
                                      KnowledgeSource.metadata_["customer_id"].astext == customer_id)
        .order_by(KnowledgeSource.created_at.desc()).limit(100)))


def _live_entries(company_id: uuid.UUID, source_ids: list[uuid.UUID]) -> Any:
    return and_(KnowledgeChunkSet.company_id == company_id, KnowledgeChunkSet.source_id.in_(source_ids),
                KnowledgeChunkSet.status == "active")


async def count_entries(session: AsyncSession, company_id: uuid.UUID, source_ids: list[uuid.UUID]) -> int:
    """The live knowledge-base entries (indexed chunks) of the customer's documents."""
    if not source_ids:
        return 0
    total = await session.scalar(select(func.coalesce(func.sum(KnowledgeChunkSet.chunk_count), 0))
                                 .where(_live_entries(company_id, source_ids)))
    return int(total or 0)


async def first_entries(session: AsyncSession, company_id: uuid.UUID, source_ids: list[uuid.UUID],
                        limit: int) -> list[Any]:
    """Without a query: the newest documents' entries, each document in reading order (rows of id,
    source_id, document_ref, heading_path, text)."""
    if not source_ids:
        return []
    return list((await session.execute(
        select(KnowledgeChunk.id, KnowledgeChunk.source_id, KnowledgeChunk.document_ref, KnowledgeChunk.heading_path,
               KnowledgeChunk.text)
        .join(KnowledgeChunkSet, KnowledgeChunkSet.id == KnowledgeChunk.set_id)
        .join(KnowledgeSource, KnowledgeSource.id == KnowledgeChunkSet.source_id)
        .where(_live_entries(company_id, source_ids))
        .order_by(KnowledgeSource.created_at.desc(), KnowledgeChunk.document_ref, KnowledgeChunk.position)
        .limit(limit))).all())


async def get_fact(session: AsyncSession, company_id: uuid.UUID, fact_id: uuid.UUID) -> FactRow | None:
    return await session.scalar(select(FactRow).where(FactRow.id == fact_id, FactRow.company_id == company_id))


async def delete_fact(session: AsyncSession, row: FactRow) -> None:
    await session.delete(row)
    await session.flush()


@dataclass(frozen=True)
class ForgetCounts:
    facts: int
    messages: int
    conversations: int


async def forget(session: AsyncSession, company_id: uuid.UUID, customer_id: str) -> ForgetCounts:
    """Deletes the customer's facts (superseded ones included), messages and conversations."""
    facts = await session.execute(delete(FactRow).where(_scope(company_id, customer_id)))
    messages = await session.execute(delete(Message).where(Message.company_id == company_id,
                                                           Message.customer_id == customer_id))
    conversations = await session.execute(delete(Conversation).where(Conversation.company_id == company_id,
                                                                     Conversation.customer_id == customer_id))
    return ForgetCounts(_rowcount(facts), _rowcount(messages), _rowcount(conversations))


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def message_still_exists(session: AsyncSession, company_id: uuid.UUID, message_id: uuid.UUID) -> bool:
    """Locks the source message against a concurrent forget until this transaction ends."""
    found = await session.scalar(select(Message.id).where(Message.id == message_id, Message.company_id == company_id)
                                 .with_for_update(key_share=True))
    return found is not None


FACT_LISTING = Listing(sort={"created_at": [FactRow.created_at], "updated_at": [FactRow.updated_at],
                            "last_confirmed_at": [FactRow.last_confirmed_at], "confidence": [FactRow.confidence]},
                       created=FactRow.created_at, updated=FactRow.updated_at, tiebreak=[FactRow.id])


async def page_facts(session: AsyncSession, company_id: uuid.UUID, customer_id: str, params: PageParams, *,
                     agent_id: uuid.UUID | None, category: str | None, include_superseded: bool) -> Page[FactListed]:
    """A customer's stored facts as a plain page (no ranking): what a sync or an export reads."""
    statement = select(FactRow).where(_scope(company_id, customer_id))
    if not include_superseded:
        statement = statement.where(FactRow.superseded_by.is_(None))
    if agent_id is not None:
        statement = statement.where(FactRow.agent_id == agent_id)
    if category is not None:
        statement = statement.where(FactRow.category == category)
    return await paginate(session, statement, params, _listed, listing=FACT_LISTING)


def _listed(row: FactRow) -> FactListed:
    return FactListed(id=row.id, customer_id=row.customer_id, agent_id=row.agent_id, fact=row.fact,
                      category=row.category, confidence=row.confidence, subject=row.subject, value=row.value,
                      source=row.source, created_at=row.created_at, updated_at=row.updated_at,
                      last_confirmed_at=row.last_confirmed_at, superseded_by=row.superseded_by,
                      superseded_at=row.superseded_at)


async def has_facts(session: AsyncSession, company_id: uuid.UUID, customer_id: str) -> bool:
    found = await session.scalar(select(FactRow.id).where(_scope(company_id, customer_id)).limit(1))
    return found is not None
