"""Reading conversation history: conversations, one conversation's messages, and messages across the company."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.conversations.schemas import ConversationPublic, MessagePublic
from cortex.db.models import Conversation, Message
from cortex.kit.errors import NotFound
from cortex.kit.pagination import Listing, Page, PageParams, paginate

# A conversation's `updated_at` moves with every turn in it: the most recently active come first.
CONVERSATION_LISTING = Listing(sort={"created_at": [Conversation.created_at], "updated_at": [Conversation.updated_at]},
                               created=Conversation.created_at, updated=Conversation.updated_at,
                               tiebreak=[Conversation.id], default_sort="updated_at:desc")
_MESSAGE_SORT = {"created_at": [Message.created_at], "updated_at": [Message.updated_at]}
# One conversation reads in the order it was spoken.
THREAD_LISTING = Listing(sort=_MESSAGE_SORT, created=Message.created_at, updated=Message.updated_at,
                         tiebreak=[Message.id], default_sort="created_at:asc")
MESSAGE_LISTING = Listing(sort=_MESSAGE_SORT, created=Message.created_at, updated=Message.updated_at,
                          tiebreak=[Message.id])


@dataclass(frozen=True)
class MessageFilter:
    conversation_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None
    customer_id: str | None = None
    channel: str | None = None
    status: str | None = None
    role: str | None = None


async def list_conversations(session: AsyncSession, company_id: uuid.UUID, params: PageParams, *,
                             customer_id: str | None = None, agent_id: uuid.UUID | None = None,
                             channel: str | None = None) -> Page[ConversationPublic]:
    statement = select(Conversation).where(Conversation.company_id == company_id)
    if customer_id is not None:
        statement = statement.where(Conversation.customer_id == customer_id)
    if agent_id is not None:
        statement = statement.where(Conversation.agent_id == agent_id)
    if channel is not None:
        statement = statement.where(Conversation.channel == channel)
    return await paginate(session, statement, params, ConversationPublic.model_validate,
                          listing=CONVERSATION_LISTING)


async def list_thread(session: AsyncSession, company_id: uuid.UUID, conversation_id: uuid.UUID,
                      params: PageParams, where: MessageFilter) -> Page[MessagePublic]:
    found = await session.scalar(select(Conversation.id).where(Conversation.company_id == company_id,
                                                                Conversation.id == conversation_id))
    if found is None:
        raise NotFound("conversation not found")
    return await _messages(session, company_id, params, where, THREAD_LISTING, conversation_id)


async def list_messages(session: AsyncSession, company_id: uuid.UUID, params: PageParams,
                        where: MessageFilter) -> Page[MessagePublic]:
    return await _messages(session, company_id, params, where, MESSAGE_LISTING, where.conversation_id)


async def _messages(session: AsyncSession, company_id: uuid.UUID, params: PageParams, where: MessageFilter,
                    listing: Listing, conversation_id: uuid.UUID | None) -> Page[MessagePublic]:
    statement = select(Message).where(Message.company_id == company_id)
    if conversation_id is not None:
        statement = statement.where(Message.conversation_id == conversation_id)
    for column, value in ((Message.agent_id, where.agent_id), (Message.customer_id, where.customer_id),
                          (Message.channel, where.channel), (Message.status, where.status),
                          (Message.role, where.role)):
        if value is not None:
            statement = statement.where(column == value)
    return await paginate(session, statement, params, to_public, listing=listing)


def to_public(row: Message) -> MessagePublic:
    fields = {name: getattr(row, name) for name in MessagePublic.model_fields if name != "cost_usd"}
    return MessagePublic.model_validate({**fields, "cost_usd": float(row.cost_usd)})
