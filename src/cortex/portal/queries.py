"""Every query the portal's pages make that no domain module already offers; each scoped to one company.

Lists fetch one row more than a page to know whether another follows, instead of counting the whole
filtered set on every page (a company with 100,000 messages would pay for that count each click).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from cortex.db.models import Agent, ApiKey, Conversation, MemoryFact, Message
from cortex.kit.errors import NotFound

# --- overview ---------------------------------------------------------------------------------------


@dataclass
class DayPoint:
    day: date
    replies: int
    cost_usd: float
    cached: int
    failed: int


@dataclass
class Overview:
    chats_today: int
    chats_7d: int
    chats_30d: int
    failed_30d: int
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    days: list[DayPoint]


def _utc_midnight(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)


async def overview(session: AsyncSession, company_id: uuid.UUID, now: datetime, days: int) -> Overview:
    """Conversations with activity in each window, failed customer messages, reply latency percentiles,
    and a per-day series over `days`. The headline reply, cost, cache and tier numbers come from
    `observability.dashboard`, the same function as `/v1/metrics/dashboard`."""
    m = Message
    today = _utc_midnight(now)
    since_7, since_30 = now - timedelta(days=7), now - timedelta(days=30)
    since = now - timedelta(days=days)
    window = and_(m.company_id == company_id, m.created_at >= min(since_30, since))
    counts = (await session.execute(select(
        func.count(func.distinct(m.conversation_id)).filter(m.created_at >= today),
        func.count(func.distinct(m.conversation_id)).filter(m.created_at >= since_7),
        func.count(func.distinct(m.conversation_id)).filter(m.created_at >= since_30),
        func.count().filter(m.created_at >= since_30, m.role == "customer", m.status == "failed"),
    ).where(window))).one()
    latency = (await session.execute(select(
        func.percentile_cont(0.5).within_group(m.latency_ms),
        func.percentile_cont(0.95).within_group(m.latency_ms),
    ).where(m.company_id == company_id, m.created_at >= since, m.role == "assistant",
            m.latency_ms.is_not(None)))).one()
    day = func.date_trunc("day", func.timezone("UTC", m.created_at)).label("day")
    rows = (await session.execute(
        select(day, func.count().filter(m.role == "assistant"),
               func.coalesce(func.sum(m.cost_usd).filter(m.role == "assistant"), 0),
               func.count().filter(m.role == "assistant", m.cached.is_(True)),
               func.count().filter(m.role == "customer", m.status == "failed"))
        .where(m.company_id == company_id, m.created_at >= since).group_by(day).order_by(day)
    )).all()
    by_day = {row[0].date(): row for row in rows}
    series = []
    first = since.astimezone(UTC).date()
    for offset in range((now.astimezone(UTC).date() - first).days + 1):
        point_day = first + timedelta(days=offset)
        row = by_day.get(point_day)
        series.append(DayPoint(point_day, int(row[1]) if row else 0, float(row[2]) if row else 0.0,
                               int(row[3]) if row else 0, int(row[4]) if row else 0))
    return Overview(chats_today=int(counts[0]), chats_7d=int(counts[1]), chats_30d=int(counts[2]),
                    failed_30d=int(counts[3]),
                    p50_latency_ms=round(float(latency[0]), 1) if latency[0] is not None else None,
                    p95_latency_ms=round(float(latency[1]), 1) if latency[1] is not None else None,
                    days=series)


async def newest_message_at(session: AsyncSession, company_id: uuid.UUID) -> datetime | None:
    """The company's newest message (ix_messages_company_created answers it from the index's end)."""
    newest: datetime | None = await session.scalar(select(func.max(Message.created_at))
                                                   .where(Message.company_id == company_id))
    return newest


# --- conversations ----------------------------------------------------------------------------------


@dataclass
class ConversationFilter:
    agent_id: uuid.UUID | None = None
    channel: str | None = None
    customer: str | None = None
    status: str | None = None  # "failed" | "ok"
    cached: bool | None = None
    date_from: date | None = None
    date_to: date | None = None
    text: str | None = None

    def query_string(self) -> dict[str, str]:
        values = {"agent_id": self.agent_id, "channel": self.channel, "customer": self.customer,
                  "status": self.status, "cached": None if self.cached is None else ("yes" if self.cached else "no"),
                  "date_from": self.date_from, "date_to": self.date_to, "q": self.text}
        return {key: str(value) for key, value in values.items() if value not in (None, "")}


@dataclass
class ConversationRow:
    id: uuid.UUID
    agent_id: uuid.UUID
    agent_name: str | None
    customer_id: str
    channel: str
    created_at: datetime
    updated_at: datetime
    messages: int
    failed: int
    cost_usd: float
    last_message: str | None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filtered(company_id: uuid.UUID, filters: ConversationFilter) -> Select[Any]:
    c, m = Conversation, Message
    statement = select(c).where(c.company_id == company_id)
    if filters.agent_id is not None:
        statement = statement.where(c.agent_id == filters.agent_id)
    if filters.channel:
        statement = statement.where(c.channel == filters.channel)
    if filters.customer:
        statement = statement.where(c.customer_id == filters.customer)
    if filters.date_from is not None:
        statement = statement.where(c.updated_at >= datetime.combine(filters.date_from, time.min, tzinfo=UTC))
    if filters.date_to is not None:
        statement = statement.where(
            c.updated_at < datetime.combine(filters.date_to + timedelta(days=1), time.min, tzinfo=UTC))

    def has(*conditions: Any) -> Any:
        return exists().where(m.company_id == company_id, m.conversation_id == c.id, *conditions)

    if filters.status == "failed":
        statement = statement.where(has(m.status == "failed"))
    elif filters.status == "ok":
        statement = statement.where(~has(m.status == "failed"))
    if filters.cached is True:
        statement = statement.where(has(m.role == "assistant", m.cached.is_(True)))
    elif filters.cached is False:
        statement = statement.where(~has(m.role == "assistant", m.cached.is_(True)))
    if filters.text:
        statement = statement.where(has(m.content.ilike(f"%{_escape_like(filters.text)}%", escape="\\")))
    return statement


def _row_columns(company_id: uuid.UUID, c: Any) -> list[Any]:
    """Per-conversation figures, computed only for the rows of the page (`c`: the page's conversations)."""
    m = Message
    same = and_(m.company_id == company_id, m.conversation_id == c.id)
    return [
        select(Agent.name).where(Agent.id == c.agent_id, Agent.company_id == company_id).scalar_subquery(),
        select(func.count()).where(same).scalar_subquery(),
        select(func.count()).where(same, m.status == "failed").scalar_subquery(),
        select(func.coalesce(func.sum(m.cost_usd), 0)).where(same).scalar_subquery(),
        select(m.content).where(same).order_by(m.created_at.desc()).limit(1).scalar_subquery(),
    ]


def _to_row(conversation: Conversation, agent_name: str | None, messages: int, failed: int, cost: Decimal,
            last: str | None) -> ConversationRow:
    return ConversationRow(conversation.id, conversation.agent_id, agent_name, conversation.customer_id,
                           conversation.channel, conversation.created_at, conversation.updated_at, int(messages),
                           int(failed), float(cost), last)


async def list_conversations(session: AsyncSession, company_id: uuid.UUID, filters: ConversationFilter,
                             page: int, page_size: int) -> tuple[list[ConversationRow], bool]:
    """One page, newest activity first, and whether another page follows.

    The page's ids are chosen first, and the per-conversation figures computed for those alone:
    PostgreSQL would otherwise compute them for every row that OFFSET skips too."""
    order = (Conversation.updated_at.desc(), Conversation.id.desc())
    chosen = _filtered(company_id, filters).order_by(*order).limit(page_size + 1) \
        .offset((page - 1) * page_size).subquery()
    c = aliased(Conversation, chosen)
    statement = select(c, *_row_columns(company_id, c)).order_by(c.updated_at.desc(), c.id.desc())
    rows = [_to_row(*row) for row in (await session.execute(statement)).all()]
    return rows[:page_size], len(rows) > page_size


EXPORT_LIMIT = 100_000


async def stream_conversations(session: AsyncSession, company_id: uuid.UUID,
                               filters: ConversationFilter) -> AsyncIterator[ConversationRow]:
    """The whole filtered set for an export, read in batches rather than held in memory at once."""
    statement = (_filtered(company_id, filters).order_by(Conversation.updated_at.desc(), Conversation.id.desc())
                 .add_columns(*_row_columns(company_id, Conversation)).limit(EXPORT_LIMIT)
                 .execution_options(yield_per=500))
    result = await session.stream(statement)
    async for row in result:
        yield _to_row(*row)


@dataclass
class Thread:
    conversation: Conversation
    agent_name: str | None
    messages: list[Message]
    has_more: bool
    facts: dict[str, str] = field(default_factory=dict)


async def thread(session: AsyncSession, company_id: uuid.UUID, conversation_id: uuid.UUID, page: int,
                 page_size: int) -> Thread:
    conversation = await session.scalar(select(Conversation).where(Conversation.company_id == company_id,
                                                                   Conversation.id == conversation_id))
    if conversation is None:
        raise NotFound("conversation not found")
    agent_name = await session.scalar(select(Agent.name).where(Agent.company_id == company_id,
                                                               Agent.id == conversation.agent_id))
    rows = list((await session.scalars(
        select(Message).where(Message.company_id == company_id, Message.conversation_id == conversation_id)
        .order_by(Message.created_at, Message.role.desc(), Message.id)
        .limit(page_size + 1).offset((page - 1) * page_size))).all())
    messages = rows[:page_size]
    fact_ids = {fact_id for message in messages for fact_id in (message.metadata_ or {}).get("facts_used", [])}
    return Thread(conversation, agent_name, messages, len(rows) > page_size,
                  await fact_texts(session, company_id, fact_ids))


async def fact_texts(session: AsyncSession, company_id: uuid.UUID, ids: set[str]) -> dict[str, str]:
    valid = []
    for raw in ids:
        try:
            valid.append(uuid.UUID(raw))
        except ValueError:
            continue
    if not valid:
        return {}
    rows = await session.execute(select(MemoryFact.id, MemoryFact.fact)
                                 .where(MemoryFact.company_id == company_id, MemoryFact.id.in_(valid)))
    return {str(fact_id): text for fact_id, text in rows.all()}


async def agent_names(session: AsyncSession, company_id: uuid.UUID) -> list[tuple[uuid.UUID, str]]:
    rows = await session.execute(select(Agent.id, Agent.name).where(Agent.company_id == company_id)
                                 .order_by(Agent.name).limit(500))
    return [(agent_id, name) for agent_id, name in rows.all()]


# --- customers --------------------------------------------------------------------------------------


async def customer_facts(session: AsyncSession, company_id: uuid.UUID, customer_id: str,
                         limit: int = 200) -> list[MemoryFact]:
    """The customer's facts, live and superseded, newest first."""
    return list((await session.scalars(
        select(MemoryFact).where(MemoryFact.company_id == company_id, MemoryFact.customer_id == customer_id)
        .order_by(MemoryFact.created_at.desc(), MemoryFact.id).limit(limit))).all())


# --- API keys ---------------------------------------------------------------------------------------


async def list_keys(session: AsyncSession, company_id: uuid.UUID, page: int,
                    page_size: int) -> tuple[list[ApiKey], bool]:
    rows = list((await session.scalars(
        select(ApiKey).where(ApiKey.company_id == company_id)
        .order_by(ApiKey.revoked_at.is_not(None), ApiKey.created_at.desc(), ApiKey.id)
        .limit(page_size + 1).offset((page - 1) * page_size))).all())
    return rows[:page_size], len(rows) > page_size

