"""Conversation history: `GET /v1/conversations`, `GET /v1/conversations/{id}/messages` and `GET /v1/messages`
(messages across the company), all with scope chat."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from cortex.auth.deps import ChatAuth
from cortex.conversations import history
from cortex.conversations.schemas import ConversationPublic, MessagePublic, MessageRole, MessageStatus
from cortex.kit.deps import SessionDep
from cortex.kit.pagination import ListParams, Page, list_query

conversations_router = APIRouter(prefix="/v1/conversations", tags=["conversations"])
messages_router = APIRouter(prefix="/v1/messages", tags=["conversations"])

CustomerFilter = Annotated[str | None, Query(max_length=200, description="The company's own customer id.")]
ChannelFilter = Annotated[str | None, Query(max_length=32, description="e.g. `whatsapp`, `web`.")]
StatusFilter = Annotated[MessageStatus | None, Query(description="`pending` while its reply is being made.")]
RoleFilter = Annotated[MessageRole | None, Query()]


@conversations_router.get("", response_model=Page[ConversationPublic])
async def list_conversations(principal: ChatAuth, session: SessionDep,
                             page: Annotated[ListParams, list_query(history.CONVERSATION_LISTING)],
                             customer_id: CustomerFilter = None, agent_id: uuid.UUID | None = None,
                             channel: ChannelFilter = None) -> Page[ConversationPublic]:
    return await history.list_conversations(session, principal.company_id, page, customer_id=customer_id,
                                            agent_id=agent_id, channel=channel)


@conversations_router.get("/{conversation_id}/messages", response_model=Page[MessagePublic])
async def list_messages(conversation_id: uuid.UUID, principal: ChatAuth, session: SessionDep,
                        page: Annotated[ListParams, list_query(history.THREAD_LISTING)],
                        message_status: Annotated[StatusFilter, Query(alias="status")] = None,
                        role: RoleFilter = None) -> Page[MessagePublic]:
    return await history.list_thread(session, principal.company_id, conversation_id, page,
                                     history.MessageFilter(status=message_status, role=role))


@messages_router.get("", response_model=Page[MessagePublic])
async def list_company_messages(principal: ChatAuth, session: SessionDep,
                                page: Annotated[ListParams, list_query(history.MESSAGE_LISTING)],
                        conversation_id: uuid.UUID | None = None, agent_id: uuid.UUID | None = None,
                        customer_id: CustomerFilter = None, channel: ChannelFilter = None,
                        message_status: Annotated[StatusFilter, Query(alias="status")] = None,
                        role: RoleFilter = None) -> Page[MessagePublic]:
    return await history.list_messages(session, principal.company_id, page, history.MessageFilter(
        conversation_id=conversation_id, agent_id=agent_id, customer_id=customer_id, channel=channel,
        status=message_status, role=role))
