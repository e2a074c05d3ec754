"""Conversation history: `GET /v1/conversations` and `GET /v1/conversations/{id}/messages` (scope chat)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from cortex.auth.deps import ChatAuth
from cortex.conversations.schemas import ConversationPublic, MessagePublic
from cortex.db.models import Conversation, Message
from cortex.kit.deps import SessionDep
from cortex.kit.errors import NotFound
from cortex.kit.pagination import Page, PageQuery, paginate

conversations_router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


@conversations_router.get("", response_model=Page[ConversationPublic])
async def list_conversations(principal: ChatAuth, session: SessionDep, page: PageQuery,
                             customer_id: Annotated[str | None, Query(max_length=200)] = None,
                             agent_id: uuid.UUID | None = None) -> Page[ConversationPublic]:
    statement = select(Conversation).where(Conversation.company_id == principal.company_id)
    if customer_id is not None:
        statement = statement.where(Conversation.customer_id == customer_id)
    if agent_id is not None:
        statement = statement.where(Conversation.agent_id == agent_id)
    return await paginate(session, statement.order_by(Conversation.updated_at.desc()), page,
                          ConversationPublic.model_validate)


@conversations_router.get("/{conversation_id}/messages", response_model=Page[MessagePublic])
async def list_messages(conversation_id: uuid.UUID, principal: ChatAuth, session: SessionDep,
                        page: PageQuery) -> Page[MessagePublic]:
    found = await session.scalar(select(Conversation.id).where(Conversation.company_id == principal.company_id,
                                                                Conversation.id == conversation_id))
    if found is None:
        raise NotFound("conversation not found")
    statement = (select(Message).where(Message.company_id == principal.company_id,
                                       Message.conversation_id == conversation_id)
                 .order_by(Message.created_at, Message.id))
    return await paginate(session, statement, page, _message)


def _message(row: Message) -> MessagePublic:
    fields = {name: getattr(row, name) for name in MessagePublic.model_fields if name != "cost_usd"}
    return MessagePublic.model_validate({**fields, "cost_usd": float(row.cost_usd)})
