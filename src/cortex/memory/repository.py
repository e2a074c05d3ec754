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
from sqlalchemy import Float, Select, and_, delete, func, literal, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.db.models import Conversation, KnowledgeSource, Message
from cortex.db.models import MemoryFact as FactRow

# Two facts this close (cosine) about the same values are the same fact said twice.
DUPLICATE_SIMILARITY = 0.9
# How many nearest facts recall considers, before standing preferences and identifier matches join.
SEMANTIC_CANDIDATES = 12
IDENTIFIER_CANDIDATES = 8
STANDING_PREFERENCES = 5
# A shared identifier (order number, phone, email) is strong evidence the fact is the one asked about.
IDENTIFIER_BOOST = 0.35
# Below this similarity a fact is not about the message; standing preferences are recalled anyway.
MIN_RELEVANCE = 0.2
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
                  last_confirmed_at=now)
    session.add(row)
    await session.flush()
    for old in same_subject:
        old.superseded_by, old.superseded_at = row.id, now
    await session.flush()
    return StoreOutcome(row.id, "created", tuple(old.id for old in same_subject))


def _columns(query_vector: np.ndarray | None) -> list[Any]:
    similarity = ((1 - FactRow.embedding.cosine_distance(_vector(query_vector))).label("similarity")
                  if query_vector is not None else literal(0.0, Float).label("similarity"))
    return [FactRow.id, FactRow.fact, FactRow.category, FactRow.confidence, FactRow.last_confirmed_at, similarity]


def _active(company_id: uuid.UUID, customer_id: str, agent_id: uuid.UUID | None, all_agents: bool) -> Any:
    clauses = [_scope(company_id, customer_id), FactRow.superseded_by.is_(None)]
    if not all_agents:
        clauses.append(or_(FactRow.agent_id.is_(None), FactRow.agent_id == agent_id))
    return and_(*clauses)


def _recency_weight(confidence: float, last_confirmed_at: datetime, now: datetime) -> float:
    age_days = max(0.0, (now - last_confirmed_at).total_seconds() / 86_400)
    return confidence * math.pow(0.5, age_days / RECENCY_HALF_LIFE_DAYS)


async def recall(session: AsyncSession, *, company_id: uuid.UUID, customer_id: str, agent_id: uuid.UUID | None,
                 query: str, query_vector: np.ndarray, all_agents: bool = False) -> list[RecalledFact]:
    """The facts about `query` (nearest by embedding, plus any naming the same order number, phone or
    e-mail), then the customer's standing preferences, best first; one round trip."""
    where = _active(company_id, customer_id, agent_id, all_agents)
    distance = FactRow.embedding.cosine_distance(_vector(query_vector))
    columns = _columns(query_vector)
    parts: list[Select[Any]] = [
        select(*columns).where(where).order_by(distance).limit(SEMANTIC_CANDIDATES),
        select(*columns).where(where, FactRow.category == "preference")
        .order_by(FactRow.confidence.desc(), FactRow.last_confirmed_at.desc()).limit(STANDING_PREFERENCES),
    ]
    wanted = identifiers(query)
    if wanted:
        parts.append(select(*columns).where(where, or_(*(FactRow.fact.icontains(token, autoescape=True)
                                                         for token in sorted(wanted))))
                     .order_by(distance).limit(IDENTIFIER_CANDIDATES))
    statement = parts[0].union_all(*parts[1:]) if len(parts) > 1 else parts[0]
    rows = (await session.execute(statement)).all()
    relevant: dict[uuid.UUID, RecalledFact] = {}
    standing: dict[uuid.UUID, RecalledFact] = {}
    for fact_id, fact, category, confidence, _confirmed, similarity in rows:
        shared = bool(wanted & identifiers(fact))
        recalled = RecalledFact(fact_id, fact, category, float(confidence),
                                float(similarity) + (IDENTIFIER_BOOST if shared else 0.0), float(similarity))
        if shared or similarity >= MIN_RELEVANCE:
            relevant[fact_id] = recalled
        elif category == "preference":
            standing[fact_id] = recalled
    # Standing preferences that are not about this message still come, after the relevant facts.
    ranked = sorted(relevant.values(), key=lambda f: f.score, reverse=True)
    return ranked + sorted((f for i, f in standing.items() if i not in relevant),
                           key=lambda f: f.confidence, reverse=True)


async def list_facts(session: AsyncSession, *, company_id: uuid.UUID, customer_id: str,
                     query_vector: np.ndarray | None, query: str | None, limit: int) -> list[RecalledFact]:
    """The API's view: every agent scope; by relevance with a query, else by recency and confidence."""
    if query_vector is not None and query is not None:
        where = _active(company_id, customer_id, None, True)
        distance = FactRow.embedding.cosine_distance(_vector(query_vector))
        rows = (await session.execute(select(*_columns(query_vector)).where(where).order_by(distance)
                                      .limit(limit))).all()
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
