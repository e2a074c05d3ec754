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
from typing import Any, Literal

import numpy as np
from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import Float, and_, bindparam, delete, func, literal, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from cortex.db.models import MEMORY_EMBEDDING_DIMENSIONS, Conversation, KnowledgeSource, Message
from cortex.db.models import MemoryFact as FactRow

# Two facts this close (cosine) about the same values are the same fact said twice.
DUPLICATE_SIMILARITY = 0.9
# How many nearest facts recall considers, before standing preferences and identifier matches join.
SEMANTIC_CANDIDATES = 30
IDENTIFIER_CANDIDATES = 8
STANDING_PREFERENCES = 5
# A shared identifier (order number, phone, email) is strong evidence the fact is the one asked about.
IDENTIFIER_BOOST = 0.35
# Below this similarity a fact is not about the message; standing preferences are recalled anyway.
MIN_RELEVANCE = 0.2
# How much a match on the subject's words counts against a match on the whole fact (see
# MemoryFact.subject_embedding); measured in bench/memory_recall.py.
SUBJECT_WEIGHT = 1.0
# Relevance against diversity when ordering the relevant facts (1.0: relevance only); measured in the
# benchmark.
DIVERSITY_LAMBDA = 0.6
# Events (category history: orders, calls, visits) pile up by the hundred; a follow-up question is more
# often about one of the customer's standing attributes, so those get this much extra score.
ATTRIBUTE_PRIOR = 0.05
# No-query ordering: confidence weighted by how recently the fact was last confirmed.
RECENCY_HALF_LIFE_DAYS = 90.0

_IDENTIFIER = re.compile(r"[\w@.+-]*\d[\w@.+-]*|[\w.+-]+@[\w-]+\.[\w.]+", re.UNICODE)
_SPACE = re.compile(r"\s+")
_SUBJECT = re.compile(r"[^\w]+", re.UNICODE)


def identifiers(text_: str) -> frozenset[str]:
    """Tokens that name one thing exactly: anything holding a digit, and e-mail addresses."""
    found = {match.group(0).strip(".-+").lower() for match in _IDENTIFIER.finditer(text_)}
    return frozenset(token for token in found if len(token) >= 3)


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
                  last_confirmed_at=now)
    session.add(row)
    await session.flush()
    for old in same_subject:
        old.superseded_by, old.superseded_at = row.id, now
    await session.flush()
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
# computed once): the nearest facts, the standing preferences, and any fact naming an identifier of the
# query. Only the candidates' vectors leave the server, as real[] (binary in asyncpg, cheap to decode).
# A constant text: nothing to build or compile per request. No HNSW index: with a per-customer filter
# it returns too few rows, and an exact scan of one customer's thousand facts is ~1-4 ms (measured in
# bench/memory_recall.py).
RECALL_SQL = """
WITH scored AS MATERIALIZED (
    SELECT id, fact, category, confidence, last_confirmed_at, embedding,
           GREATEST(1 - (embedding <=> CAST(:query_vector AS halfvec)),
                    :subject_weight * (1 - (subject_embedding <=> CAST(:query_vector AS halfvec)))) AS similarity
    FROM memory_facts
    WHERE company_id = :company_id AND customer_id = :customer_id AND superseded_by IS NULL
      AND (:all_agents OR agent_id IS NULL OR agent_id = :agent_id)
)
(SELECT id, fact, category, confidence, similarity, CAST(embedding AS real[]) AS vector
 FROM scored ORDER BY similarity DESC LIMIT :semantic)
UNION ALL
(SELECT id, fact, category, confidence, similarity, CAST(embedding AS real[]) AS vector
 FROM scored WHERE category = 'preference' ORDER BY confidence DESC, last_confirmed_at DESC LIMIT :preferences)
UNION ALL
(SELECT id, fact, category, confidence, similarity, CAST(embedding AS real[]) AS vector
 FROM scored WHERE fact ILIKE ANY(CAST(:patterns AS text[])) ORDER BY similarity DESC LIMIT :identified)
"""


def _like_pattern(token: str) -> str:
    return "%" + token.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def recall_parameters(*, company_id: uuid.UUID, customer_id: str, agent_id: uuid.UUID | None, query: str,
                      query_vector: np.ndarray, all_agents: bool = False) -> dict[str, Any]:
    return {
        "query_vector": "[" + ",".join(repr(float(x)) for x in query_vector) + "]",
        "subject_weight": SUBJECT_WEIGHT, "company_id": company_id, "customer_id": customer_id,
        "all_agents": all_agents, "agent_id": agent_id, "semantic": SEMANTIC_CANDIDATES,
        "preferences": STANDING_PREFERENCES, "identified": IDENTIFIER_CANDIDATES,
        "patterns": [_like_pattern(token) for token in sorted(identifiers(query))],
    }


async def recall(session: AsyncSession | AsyncConnection, *, company_id: uuid.UUID, customer_id: str,
                 agent_id: uuid.UUID | None, query: str, query_vector: np.ndarray,
                 all_agents: bool = False) -> list[RecalledFact]:
    """The facts about `query`, relevant and diverse first, then the customer's standing preferences."""
    parameters = recall_parameters(company_id=company_id, customer_id=customer_id, agent_id=agent_id, query=query,
                                   query_vector=query_vector, all_agents=all_agents)
    rows = (await session.execute(text(RECALL_SQL), parameters)).all()
    wanted = identifiers(query)
    relevant: dict[uuid.UUID, tuple[RecalledFact, Any]] = {}
    standing: dict[uuid.UUID, RecalledFact] = {}
    for fact_id, fact, category, confidence, similarity, vector in rows:
        shared = bool(wanted & identifiers(fact))
        score = (float(similarity) + (IDENTIFIER_BOOST if shared else 0.0)
                 + (ATTRIBUTE_PRIOR if category != "history" else 0.0))
        recalled = RecalledFact(fact_id, fact, category, float(confidence), score, float(similarity))
        if shared or similarity >= MIN_RELEVANCE:
            relevant[fact_id] = (recalled, vector)
        elif category == "preference":
            standing[fact_id] = recalled
    ranked = diversify(list(relevant.values()))
    # Standing preferences that are not about this message still come, after the relevant facts.
    return ranked + sorted(standing.values(), key=lambda f: f.confidence, reverse=True)


def diversify(candidates: list[tuple[RecalledFact, Any]]) -> list[RecalledFact]:
    """Maximal marginal relevance: a customer's hundred store visits must not fill every slot ahead of
    the one fact about their wheelchair. Each pick maximises
    `DIVERSITY_LAMBDA * score - (1 - DIVERSITY_LAMBDA) * (similarity to the closest fact already picked)`."""
    if len(candidates) <= 1 or DIVERSITY_LAMBDA >= 1.0:
        return sorted((fact for fact, _ in candidates), key=lambda f: f.score, reverse=True)
    facts = [fact for fact, _ in candidates]
    matrix = np.asarray([np.asarray(vector, dtype=np.float32) for _, vector in candidates])
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    pairwise = matrix @ matrix.T
    scores = np.asarray([fact.score for fact in facts], dtype=np.float32)
    closest = np.full(len(facts), -1.0, dtype=np.float32)
    remaining = list(range(len(facts)))
    order: list[int] = []
    while remaining:
        marginal = DIVERSITY_LAMBDA * scores[remaining] - (1 - DIVERSITY_LAMBDA) * np.maximum(closest[remaining], 0)
        pick = remaining[int(np.argmax(marginal))]
        order.append(pick)
        remaining.remove(pick)
        closest = np.maximum(closest, pairwise[pick])
    return [facts[i] for i in order]


async def list_facts(session: AsyncSession, *, company_id: uuid.UUID, customer_id: str,
                     query_vector: np.ndarray | None, query: str | None, limit: int) -> list[RecalledFact]:
    """The API's view: every agent scope; by relevance with a query, else by recency and confidence."""
    if query_vector is not None and query is not None:
        where = _active(company_id, customer_id, None, True)
        rows = (await session.execute(select(*_columns(query_vector)).where(where)
                                      .order_by(_similarity(query_vector).desc()).limit(limit))).all()
        wanted = identifiers(query)
        scored = [RecalledFact(i, f, c, float(conf), float(sim) + (IDENTIFIER_BOOST if wanted & identifiers(f) else 0),
                               float(sim)) for i, f, c, conf, _, sim in rows]
        return sorted(scored, key=lambda f: f.score, reverse=True)
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
