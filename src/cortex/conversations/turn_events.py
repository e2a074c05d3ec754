"""The events a conversation turn writes, in the statement that stores it (built here, written by `store`).

Only `message.*` events carry message text; the others carry ids and small fields.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from cortex.events.outbox import Event
from cortex.llm import offline

if TYPE_CHECKING:
    from cortex.conversations.store import CustomerTurn, ReplyRecord

DONT_KNOW_REPLIES = frozenset(offline.DONT_KNOW.values())
# An agent's action under one of these names hands the conversation to a person when the model calls it.
HANDOFF_ACTIONS = frozenset({"handoff", "hand_off", "human_handoff", "handoff_to_human", "transfer_to_human"})


def conversation_created(turn: CustomerTurn) -> Event:
    return Event("conversation.created", {
        "conversation_id": turn.conversation_id, "agent_id": turn.agent_id, "customer_id": turn.customer_id,
        "channel": turn.channel})


def message_received(turn: CustomerTurn) -> Event:
    return Event("message.received", {
        "message_id": turn.message_id, "conversation_id": turn.conversation_id, "agent_id": turn.agent_id,
        "customer_id": turn.customer_id, "channel": turn.channel, "content": turn.content})


def message_failed(conversation_id: uuid.UUID, message_id: uuid.UUID, error: str) -> Event:
    return Event("message.failed", {"message_id": message_id, "conversation_id": conversation_id, "error": error})


def reply_stored(turn: CustomerTurn, reply_id: uuid.UUID, record: ReplyRecord) -> list[Event]:
    events = [Event("message.replied", {
        "message_id": reply_id, "reply_to": turn.message_id, "conversation_id": turn.conversation_id,
        "agent_id": turn.agent_id, "customer_id": turn.customer_id, "content": record.content,
        "model": record.model_used, "tier": record.tier, "cached": record.cached,
        "cost_usd": round(record.cost_usd, 8), "latency_ms": round(record.latency_ms, 3)})]
    events += actions_recorded(turn.conversation_id, reply_id, record.tool_calls)
    reason = handoff_reason(record)
    if reason is not None:
        events.append(Event("agent.handoff_requested", {
            "conversation_id": turn.conversation_id, "message_id": reply_id, "agent_id": turn.agent_id,
            "customer_id": turn.customer_id, **reason}))
    return events


def handoff_reason(record: ReplyRecord) -> dict[str, Any] | None:
    """The offline responder's "I don't know", or a call of one of the hand-off actions."""
    if record.model_used == offline.MODEL_NAME and record.content in DONT_KNOW_REPLIES:
        return {"reason": "no_answer"}
    called = [call.get("name") for call in record.tool_calls if call.get("name") in HANDOFF_ACTIONS]
    return {"reason": "action", "action": called[0]} if called else None


def actions_recorded(conversation_id: uuid.UUID, message_id: uuid.UUID, calls: list[dict[str, Any]]) -> list[Event]:
    return [Event("action.executed" if call.get("outcome") == "ok" else "action.failed", {
        "message_id": message_id, "conversation_id": conversation_id, "action": call.get("name"),
        "outcome": call.get("outcome"), "status": call.get("status"), "duration_ms": call.get("duration_ms"),
        "after_reply": bool(call.get("after_reply"))}) for call in calls]
