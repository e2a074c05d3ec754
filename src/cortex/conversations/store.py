"""Conversations and messages: the customer's message first, the reply with everything it cost."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, func, literal_column, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.conversations import turn_events
from cortex.db.engine import Database
from cortex.db.models import Conversation, Message
from cortex.events import outbox
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


@dataclass(frozen=True)
class TurnReads:
    """What a turn reads before its services run: whose the conversation is, the customer, the history."""

    owner: str | None  # the conversation's customer; None when it does not exist yet
    customer: dict[str, Any] | None  # the customer's profile columns; None when the company has no record
    history: list[HistoryTurn]


# One statement outside any transaction (no BEGIN/COMMIT): asyncpg keeps it prepared per connection.
# JSON leaves as text, so the driver's codecs do not matter. The history is the customer's own
# answered turns, oldest first: failed and pending messages are left out, and so are other customers'
# rows (`store_turn` keeps them out, but a database written by an older release may hold some).
_TURN_READS = """
SELECT (SELECT customer_id FROM conversations WHERE company_id = $1 AND id = $2) AS owner,
       (SELECT json_build_object('first_name', first_name, 'last_name', last_name, 'email', email,
                                 'organization', organization, 'segments', segments, 'metadata', metadata)::text
        FROM customers WHERE company_id = $1 AND customer_id = $3) AS customer,
       (SELECT json_agg(json_build_array(recent.role, recent.content)
                        ORDER BY recent.created_at, recent.role)::text
        FROM (SELECT role, content, created_at FROM messages
              WHERE company_id = $1 AND conversation_id = $2 AND customer_id = $3 AND status = 'ok'
              ORDER BY created_at DESC, role DESC LIMIT $4) AS recent) AS history
"""


async def read_turn(database: Database, *, company_id: uuid.UUID, conversation_id: uuid.UUID, customer_id: str,
                    history_turns: int) -> TurnReads:
    """Refuses another customer's conversation early (`store_turn` decides for good, as first messages race)."""
    async with database.driver() as driver:
        row = await driver.fetchrow(_TURN_READS, company_id, conversation_id, customer_id, max(history_turns, 0) * 2)
    assert row is not None  # a SELECT of scalar subqueries always returns its one row
    owner = row["owner"]
    if owner is not None and owner != customer_id:
        raise InvalidInput("conversation_id", "this conversation belongs to another customer")
    history = [HistoryTurn(role=role, content=content) for role, content in json.loads(row["history"] or "[]")]
    return TurnReads(owner=owner, customer=json.loads(row["customer"]) if row["customer"] else None,
                     history=history if owner is not None else [])


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


# Every column of a message, in the order of the recordset below (`later`: see `_message_rows`).
_MESSAGE_COLUMNS = """id uuid, company_id uuid, conversation_id uuid, agent_id uuid, customer_id varchar, role varchar,
    content text, status varchar, channel varchar, request_id varchar, error text, model_used varchar, tier varchar,
    tier_reason text, tokens_input integer, tokens_output integer, cost_usd numeric, latency_ms double precision,
    step_timings jsonb, context_tokens jsonb, actions_executed jsonb, tool_calls jsonb, tool_rounds integer,
    cached boolean, cache_similarity double precision, cache_entry_id uuid, config_cache_hit boolean,
    llm_latency_ms double precision, metadata jsonb, cache_checked boolean, later boolean"""
_INSERT_MESSAGES = """INSERT INTO messages (id, company_id, conversation_id, agent_id, customer_id, role, content,
        status, channel, request_id, error, model_used, tier, tier_reason, tokens_input, tokens_output, cost_usd,
        latency_ms, step_timings, context_tokens, actions_executed, tool_calls, tool_rounds, cached,
        cache_similarity, cache_entry_id, config_cache_hit, llm_latency_ms, metadata, cache_checked, created_at,
        updated_at)
    SELECT r.id, r.company_id, r.conversation_id, r.agent_id, r.customer_id, r.role, r.content, r.status, r.channel,
        r.request_id, r.error, r.model_used, r.tier, r.tier_reason, r.tokens_input, r.tokens_output, r.cost_usd,
        r.latency_ms, r.step_timings, r.context_tokens, r.actions_executed, r.tool_calls, r.tool_rounds, r.cached,
        r.cache_similarity, r.cache_entry_id, r.config_cache_hit, r.llm_latency_ms, r.metadata, r.cache_checked,
        moment.at, moment.at"""
# Each message's moment, once for both its timestamps (see `store_turn` for `later`).
_MOMENT = ("CROSS JOIN LATERAL (SELECT CASE WHEN r.later THEN clock_timestamp() ELSE now() END AS at) "
           "AS moment")
_EVENT_CTES, _DEFER = outbox.written("event_rows")

# One statement, one round trip: claim the conversation (see `_claim`), store the message(s) and write
# the turn's events. When the conversation is another customer's, `claimed` is empty and so is
# everything selected from it: nothing is written.
_STORE_TURN = text(f"""
WITH claimed AS (
    INSERT INTO conversations AS conversation (id, company_id, agent_id, customer_id, channel, metadata)
    VALUES (CAST(:conversation_id AS uuid), CAST(:company_id AS uuid), CAST(:agent_id AS uuid),
            CAST(:customer_id AS varchar), CAST(:channel AS varchar), CAST('{{}}' AS jsonb))
    ON CONFLICT (company_id, id) DO UPDATE SET agent_id = EXCLUDED.agent_id, updated_at = now()
    WHERE conversation.customer_id = EXCLUDED.customer_id
    RETURNING (conversation.xmax = 0) AS created
), stored AS (
    {_INSERT_MESSAGES}
    FROM claimed CROSS JOIN jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({_MESSAGE_COLUMNS}) {_MOMENT}
), event_rows AS (
    SELECT pending.* FROM ({outbox.EVENT_ROWS}) AS pending, claimed
    WHERE pending.type <> 'conversation.created' OR claimed.created
), {_EVENT_CTES}
SELECT (SELECT created FROM claimed) AS created, {_DEFER} AS deferred
""")

# The reply of a question stored earlier: the reply row, the question marked ok, the conversation
# touched and the reply's events, in one statement.
_STORE_REPLY = text(f"""
WITH stored AS (
    {_INSERT_MESSAGES}
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({_MESSAGE_COLUMNS}) {_MOMENT}
), answered AS (
    UPDATE messages SET status = 'ok', updated_at = now()
    WHERE id = CAST(:question_id AS uuid) AND company_id = CAST(:company_id AS uuid)
), touched AS (
    UPDATE conversations SET updated_at = now()
    WHERE id = CAST(:conversation_id AS uuid) AND company_id = CAST(:company_id AS uuid)
), event_rows AS ({outbox.EVENT_ROWS}), {_EVENT_CTES}
SELECT {_DEFER} AS deferred
""")


async def store_turn(session: AsyncSession, turn: CustomerTurn, *, status: str, error: str | None = None,
                     reply_id: uuid.UUID | None = None, reply: ReplyRecord | None = None) -> None:
    """The conversation (created or touched) and the customer's message, with the reply when there is one.

    Raises `InvalidInput` when the conversation turned out to be another customer's: then nothing is
    stored. Written as one SQL statement, not ORM units of work: this runs on every chat, and a cache
    hit stores its whole turn here.
    """
    rows = [_message_row(turn, message_id=turn.message_id, role="customer", content=turn.content, status=status,
                         error=error, metadata=turn.metadata, later=False)]
    events = [turn_events.conversation_created(turn), turn_events.message_received(turn)]
    if status == "failed":
        events.append(turn_events.message_failed(turn.conversation_id, turn.message_id, error or ""))
    if reply is not None:
        assert reply_id is not None
        # now() is the transaction's start, clock_timestamp() the moment of the insert: the reply sorts
        # after its question even though both rows are written together.
        rows.append(_reply_row(turn, reply_id, reply, later=True))
        events += turn_events.reply_stored(turn, reply_id, reply)
    claimed = (await session.execute(_STORE_TURN, {
        "conversation_id": str(turn.conversation_id), "company_id": str(turn.company_id),
        "agent_id": str(turn.agent_id), "customer_id": turn.customer_id, "channel": turn.channel,
        "rows": json.dumps(rows, default=str), **outbox.rows_json(events),
    })).first()
    if claimed is None or claimed.created is None:
        raise InvalidInput("conversation_id", "this conversation belongs to another customer")


def _message_row(turn: CustomerTurn, *, message_id: uuid.UUID, role: str, content: str, status: str,
                 error: str | None, metadata: dict[str, Any], later: bool) -> dict[str, Any]:
    # Every column given: the recordset names them all.
    return {
        "id": message_id, "company_id": turn.company_id, "conversation_id": turn.conversation_id,
        "agent_id": turn.agent_id, "customer_id": turn.customer_id, "role": role, "content": content,
        "status": status, "channel": turn.channel, "request_id": turn.request_id, "error": error,
        "model_used": None, "tier": None, "tier_reason": None, "tokens_input": 0, "tokens_output": 0,
        "cost_usd": "0", "latency_ms": None, "step_timings": {}, "context_tokens": {}, "actions_executed": [],
        "tool_calls": [], "tool_rounds": 0, "cached": False, "cache_similarity": None, "cache_entry_id": None,
        "config_cache_hit": None, "llm_latency_ms": None, "metadata": metadata, "cache_checked": None,
        "later": later,
    }


def _reply_row(turn: CustomerTurn, reply_id: uuid.UUID, record: ReplyRecord, *, later: bool) -> dict[str, Any]:
    row = _message_row(turn, message_id=reply_id, role="assistant", content=record.content, status="ok",
                       error=None, metadata=record.metadata, later=later)
    row.update(
        model_used=record.model_used, tier=record.tier, tier_reason=record.tier_reason,
        tokens_input=record.tokens_input, tokens_output=record.tokens_output,
        cost_usd=str(Decimal(str(round(record.cost_usd, 8)))), latency_ms=record.latency_ms,
        step_timings=record.step_timings, context_tokens=record.context_tokens,
        actions_executed=record.actions_executed, tool_calls=record.tool_calls, tool_rounds=record.tool_rounds,
        cached=record.cached, cache_similarity=record.cache_similarity, cache_entry_id=record.cache_entry_id,
        config_cache_hit=record.config_cache_hit, llm_latency_ms=record.llm_latency_ms,
        cache_checked=record.cache_checked,
    )
    return row


async def recent_history(session: AsyncSession, company_id: uuid.UUID, conversation_id: uuid.UUID,
                         customer_id: str, limit: int, before: datetime | None = None) -> list[HistoryTurn]:
    """The last `limit` answered turns of this customer, oldest first; failed and pending messages are left out.

    `before`: only messages stored before then (the history a turn that is already stored was answered with).

    Only the customer's own rows: `store_turn` keeps other customers out of a conversation, but a
    database written by an older release may hold some, and they must never reach this customer's prompt.
    """
    if limit <= 0:
        return []
    statement = select(Message.role, Message.content).where(
        Message.company_id == company_id, Message.conversation_id == conversation_id,
        Message.customer_id == customer_id, Message.status == "ok")
    if before is not None:
        statement = statement.where(Message.created_at < before)
    rows = (await session.execute(
        statement
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
    """The reply of a turn whose customer message `store_turn` stored earlier, in one statement."""
    await session.execute(_STORE_REPLY, {
        "rows": json.dumps([_reply_row(turn, reply_id, record, later=False)], default=str),
        "question_id": str(turn.message_id), "conversation_id": str(turn.conversation_id),
        "company_id": str(turn.company_id), **outbox.rows_json(turn_events.reply_stored(turn, reply_id, record)),
    })


async def mark_failed(session: AsyncSession, *, company_id: uuid.UUID, message_id: uuid.UUID, error: str) -> None:
    failed = (await session.execute(
        update(Message).where(Message.id == message_id, Message.company_id == company_id)
        .values(status="failed", error=error[:2000]).returning(Message.conversation_id)
    )).first()
    if failed is not None:
        await outbox.record_many(session, company_id, [
            turn_events.message_failed(failed.conversation_id, message_id, error[:2000])])


async def append_tool_calls(session: AsyncSession, *, company_id: uuid.UUID, message_id: uuid.UUID,
                            calls: list[dict[str, Any]], names: list[str]) -> None:
    """Post-reply actions finish after the reply is stored; their records join it afterwards."""
    message = await session.get(Message, message_id)
    if message is None or message.company_id != company_id:
        return
    message.tool_calls = [*message.tool_calls, *calls]
    message.actions_executed = [*message.actions_executed, *names]
    await outbox.record_many(session, company_id,
                             turn_events.actions_recorded(message.conversation_id, message_id, calls))
