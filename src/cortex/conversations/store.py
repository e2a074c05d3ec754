"""Conversations and messages: the customer's message first, the reply with everything it cost."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, func, insert, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.conversations import turn_events
from cortex.db.models import Conversation, Message
from cortex.kit.errors import InvalidInput
from cortex.pipeline.ports import HistoryTurn

# The tables themselves: Core inserts by column name ("metadata", not the attribute `metadata_`).
CONVERSATIONS = cast(Table, Conversation.__table__)
MESSAGES = cast(Table, Message.__table__)


async def open_conversation(session: AsyncSession, *, company_id: uuid.UUID, agent_id: uuid.UUID,
                            conversation_id: uuid.UUID, customer_id: str, channel: str) -> None:
    """The client names the conversation; it is created on first use and must stay with its customer."""
    await _claim(session, company_id=company_id, agent_id=agent_id, conversation_id=conversation_id,
                 customer_id=customer_id, channel=channel)


async def _claim(session: AsyncSession, *, company_id: uuid.UUID, agent_id: uuid.UUID, conversation_id: uuid.UUID,
                 customer_id: str, channel: str) -> bool:
    """Creates the conversation or touches it, in one statement that also decides whose it is; True if created.

    Concurrent first messages on a new id from two customers meet here: PostgreSQL lets one insert
    and makes the others wait for its commit, then see its customer. The row stays locked until this
    transaction ends, so nothing of another customer (or a forget) slips in between.
    """
    values = {"id": conversation_id, "company_id": company_id, "agent_id": agent_id, "customer_id": customer_id,
              "channel": channel, "metadata": {}}
    statement = pg_insert(CONVERSATIONS).values(values)
    claimed = (await session.execute(statement.on_conflict_do_update(
        index_elements=[CONVERSATIONS.c.company_id, CONVERSATIONS.c.id],
        # A hand-over between agents continues the same thread.
        set_={"agent_id": statement.excluded.agent_id, "updated_at": func.now()},
        where=CONVERSATIONS.c.customer_id == statement.excluded.customer_id,
    # xmax is 0 only on a row this statement inserted (an updated row carries this transaction's id).
    ).returning(CONVERSATIONS.c.id, literal_column("xmax = 0").label("created")))).first()
    if claimed is None:
        raise InvalidInput("conversation_id", "this conversation belongs to another customer")
    return bool(claimed.created)


async def check_conversation(session: AsyncSession, *, company_id: uuid.UUID, conversation_id: uuid.UUID,
                             customer_id: str) -> bool:
    """Whether the conversation exists; refuses another customer's early. `store_turn` decides for good."""
    owner = await session.scalar(select(Conversation.customer_id)
                                 .where(Conversation.company_id == company_id, Conversation.id == conversation_id))
    if owner is not None and owner != customer_id:
        raise InvalidInput("conversation_id", "this conversation belongs to another customer")
    return owner is not None


@dataclass(frozen=True)
class CustomerTurn:
    message_id: uuid.UUID
    company_id: uuid.UUID
    conversation_id: uuid.UUID
    agent_id: uuid.UUID
    customer_id: str
    content: str
    channel: str
    request_id: str
    metadata: dict[str, Any]


async def store_turn(session: AsyncSession, turn: CustomerTurn, *, status: str, error: str | None = None,
                     reply_id: uuid.UUID | None = None, reply: ReplyRecord | None = None) -> None:
    """The conversation (created or touched) and the customer's message, with the reply when there is one.

    Raises `InvalidInput` when the conversation turned out to be another customer's: then nothing is
    stored. Core statements, not ORM units of work: this runs on every chat, and a cache hit stores
    its whole turn here in one transaction of two statements.
    """
    created = await _claim(session, company_id=turn.company_id, agent_id=turn.agent_id,
                           conversation_id=turn.conversation_id, customer_id=turn.customer_id, channel=turn.channel)
    rows = [_message_row(turn.company_id, turn.conversation_id, turn.agent_id, turn.customer_id, turn.channel,
                         turn.request_id, message_id=turn.message_id, role="customer", content=turn.content,
                         status=status, error=error, metadata=turn.metadata, created_at=func.now())]
    if reply is not None:
        assert reply_id is not None
        # now() is the transaction's start, clock_timestamp() the moment of the insert: the reply sorts
        # after its question even though both rows are written together.
        rows.append(_reply_row(turn.company_id, turn.conversation_id, turn.agent_id, turn.customer_id, turn.channel,
                               turn.request_id, reply_id, reply, created_at=func.clock_timestamp()))
    await session.execute(insert(MESSAGES).values(rows))
    if created:
        await turn_events.conversation_created(session, turn)
    await turn_events.message_received(session, turn)
    if status == "failed":
        await turn_events.message_failed(session, turn.company_id, turn.conversation_id, turn.message_id, error or "")
    if reply is not None:
        assert reply_id is not None
        await turn_events.reply_stored(session, turn, reply_id, reply)


def _message_row(company_id: uuid.UUID, conversation_id: uuid.UUID, agent_id: uuid.UUID, customer_id: str,
                 channel: str, request_id: str, *, message_id: uuid.UUID, role: str, content: str, status: str,
                 error: str | None, metadata: dict[str, Any], created_at: Any) -> dict[str, Any]:
    # Every column given: a multi-row VALUES needs the same keys in each row.
    return {
        "id": message_id, "company_id": company_id, "conversation_id": conversation_id, "agent_id": agent_id,
        "customer_id": customer_id, "role": role, "content": content, "status": status, "channel": channel,
        "request_id": request_id, "error": error, "model_used": None, "tier": None, "tier_reason": None,
        "tokens_input": 0, "tokens_output": 0, "cost_usd": Decimal(0), "latency_ms": None,
        "step_timings": {}, "context_tokens": {}, "actions_executed": [], "tool_calls": [], "tool_rounds": 0,
        "cached": False, "cache_similarity": None, "cache_entry_id": None, "config_cache_hit": None,
        "llm_latency_ms": None, "metadata": metadata, "cache_checked": None, "created_at": created_at,
        "updated_at": created_at,
    }


def _reply_row(company_id: uuid.UUID, conversation_id: uuid.UUID, agent_id: uuid.UUID, customer_id: str,
               channel: str, request_id: str, reply_id: uuid.UUID, record: ReplyRecord,
               created_at: Any) -> dict[str, Any]:
    row = _message_row(company_id, conversation_id, agent_id, customer_id, channel, request_id,
                       message_id=reply_id, role="assistant", content=record.content, status="ok", error=None,
                       metadata=record.metadata, created_at=created_at)
    row.update(
        model_used=record.model_used, tier=record.tier, tier_reason=record.tier_reason,
        tokens_input=record.tokens_input, tokens_output=record.tokens_output,
        cost_usd=Decimal(str(round(record.cost_usd, 8))), latency_ms=record.latency_ms,
        step_timings=record.step_timings, context_tokens=record.context_tokens,
        actions_executed=record.actions_executed, tool_calls=record.tool_calls, tool_rounds=record.tool_rounds,
        cached=record.cached, cache_similarity=record.cache_similarity, cache_entry_id=record.cache_entry_id,
        config_cache_hit=record.config_cache_hit, llm_latency_ms=record.llm_latency_ms,
        cache_checked=record.cache_checked,
    )
    return row


async def recent_history(session: AsyncSession, company_id: uuid.UUID, conversation_id: uuid.UUID,
                         customer_id: str, limit: int) -> list[HistoryTurn]:
    """The last `limit` answered turns of this customer, oldest first; failed and pending messages are left out.

    Only the customer's own rows: `store_turn` keeps other customers out of a conversation, but a
    database written by an older release may hold some, and they must never reach this customer's prompt.
    """
    if limit <= 0:
        return []
    rows = (await session.execute(
        select(Message.role, Message.content)
        .where(Message.company_id == company_id, Message.conversation_id == conversation_id,
               Message.customer_id == customer_id, Message.status == "ok")
        .order_by(Message.created_at.desc(), Message.role.desc())
        .limit(limit * 2)
    )).all()
    return [HistoryTurn(role=role, content=content) for role, content in reversed(rows)]


async def add_customer_message(session: AsyncSession, *, company_id: uuid.UUID, conversation_id: uuid.UUID,
                               agent_id: uuid.UUID, customer_id: str, content: str, channel: str,
                               request_id: str, metadata: dict[str, Any]) -> Message:
    message = Message(company_id=company_id, conversation_id=conversation_id, agent_id=agent_id,
                      customer_id=customer_id, role="customer", content=content, status="pending", channel=channel,
                      request_id=request_id, metadata_=metadata)
    session.add(message)
    await session.flush()
    return message


@dataclass
class ReplyRecord:
    content: str
    model_used: str
    tier: str | None
    tier_reason: str | None
    tokens_input: int
    tokens_output: int
    cost_usd: float
    latency_ms: float
    step_timings: dict[str, float]
    context_tokens: dict[str, Any]
    actions_executed: list[str]
    tool_calls: list[dict[str, Any]]
    tool_rounds: int
    cached: bool
    cache_similarity: float | None
    cache_entry_id: uuid.UUID | None
    config_cache_hit: bool | None
    llm_latency_ms: float | None
    metadata: dict[str, Any] = field(default_factory=dict)
    cache_checked: bool | None = None


async def store_reply(session: AsyncSession, turn: CustomerTurn, reply_id: uuid.UUID, record: ReplyRecord) -> None:
    """The reply of a turn whose customer message `store_turn` stored earlier, in Core statements."""
    await session.execute(insert(MESSAGES).values(_reply_row(
        turn.company_id, turn.conversation_id, turn.agent_id, turn.customer_id, turn.channel, turn.request_id,
        reply_id, record, created_at=func.now())))
    await session.execute(update(Message).where(Message.id == turn.message_id, Message.company_id == turn.company_id)
                          .values(status="ok"))
    await session.execute(update(Conversation).where(Conversation.id == turn.conversation_id,
                                                     Conversation.company_id == turn.company_id)
                          .values(updated_at=func.now()))
    await turn_events.reply_stored(session, turn, reply_id, record)


async def mark_failed(session: AsyncSession, *, company_id: uuid.UUID, message_id: uuid.UUID, error: str) -> None:
    failed = (await session.execute(
        update(Message).where(Message.id == message_id, Message.company_id == company_id)
        .values(status="failed", error=error[:2000]).returning(Message.conversation_id)
    )).first()
    if failed is not None:
        await turn_events.message_failed(session, company_id, failed.conversation_id, message_id, error[:2000])


async def append_tool_calls(session: AsyncSession, *, company_id: uuid.UUID, message_id: uuid.UUID,
                            calls: list[dict[str, Any]], names: list[str]) -> None:
    """Post-reply actions finish after the reply is stored; their records join it afterwards."""
    message = await session.get(Message, message_id)
    if message is None or message.company_id != company_id:
        return
    message.tool_calls = [*message.tool_calls, *calls]
    message.actions_executed = [*message.actions_executed, *names]
    await turn_events.actions_recorded(session, company_id, message.conversation_id, message_id, calls)
