"""Conversations: the filtered list, its CSV and JSON export, and a conversation with each reply's trace."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response, StreamingResponse

from cortex.db.models import Message
from cortex.kit.deps import RuntimeDep, SessionDep
from cortex.kit.errors import InvalidQuery, NotFound
from cortex.pipeline.schemas import Channel
from cortex.portal import queries
from cortex.portal.rendering import page
from cortex.portal.web_session import PREFIX, ViewerDep

router = APIRouter(prefix=PREFIX + "/conversations", include_in_schema=False)

PAGE_SIZE = 25
THREAD_PAGE_SIZE = 100
CHANNELS = list(Channel.__args__)  # type: ignore[attr-defined]
Text = Annotated[str, Query(max_length=200)]


def _optional_uuid(name: str, value: str) -> uuid.UUID | None:
    if not value.strip():
        return None
    try:
        return uuid.UUID(value.strip())
    except ValueError as exc:
        raise InvalidQuery(name, "must be an id (UUID)") from exc


def _optional_date(name: str, value: str) -> date | None:
    if not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        raise InvalidQuery(name, "must be a date, YYYY-MM-DD") from exc


def _filters(agent_id: str, channel: str, customer: str, status: str, cached: str, date_from: str, date_to: str,
             q: str) -> queries.ConversationFilter:
    if channel and channel not in CHANNELS:
        raise InvalidQuery("channel", f"must be one of {', '.join(CHANNELS)}")
    if status not in ("", "ok", "failed"):
        raise InvalidQuery("status", "must be ok or failed")
    if cached not in ("", "yes", "no"):
        raise InvalidQuery("cached", "must be yes or no")
    return queries.ConversationFilter(
        agent_id=_optional_uuid("agent_id", agent_id), channel=channel or None, customer=customer.strip() or None,
        status=status or None, cached=None if not cached else cached == "yes",
        date_from=_optional_date("date_from", date_from), date_to=_optional_date("date_to", date_to),
        text=q.strip() or None)


FilterArgs = dict[str, Any]


@router.get("")
async def conversations(request: Request, viewer: ViewerDep, session: SessionDep, agent_id: Text = "",
                        channel: Text = "", customer: Text = "", status: Text = "", cached: Text = "",
                        date_from: Text = "", date_to: Text = "", q: Text = "",
                        page_number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1) -> Response:
    filters = _filters(agent_id, channel, customer, status, cached, date_from, date_to, q)
    rows, has_more = await queries.list_conversations(session, viewer.company_id, filters, page_number, PAGE_SIZE)
    return page(request, "conversations.html", viewer, rows=rows, has_more=has_more, page_number=page_number,
                filters=filters, query=filters.query_string(), agents=await queries.agent_names(session,
                                                                                              viewer.company_id),
                channels=CHANNELS, nav="conversations")


EXPORT_FIELDS = ["conversation_id", "agent_id", "agent_name", "customer_id", "channel", "created_at", "updated_at",
                 "messages", "failed_messages", "cost_usd"]


def _export_record(row: queries.ConversationRow) -> dict[str, Any]:
    return {"conversation_id": str(row.id), "agent_id": str(row.agent_id), "agent_name": row.agent_name,
            "customer_id": row.customer_id, "channel": row.channel, "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(), "messages": row.messages, "failed_messages": row.failed,
            "cost_usd": round(row.cost_usd, 8)}


@router.get("/export.{fmt}")
async def export(fmt: str, viewer: ViewerDep, runtime: RuntimeDep, agent_id: Text = "", channel: Text = "",
                 customer: Text = "", status: Text = "", cached: Text = "", date_from: Text = "", date_to: Text = "",
                 q: Text = "") -> Response:
    if fmt not in ("csv", "json"):
        raise NotFound("export as csv or json")
    filters = _filters(agent_id, channel, customer, status, cached, date_from, date_to, q)
    company_id = viewer.company_id

    async def body() -> AsyncIterator[str]:
        # Its own session: the response streams after the request's dependencies have closed theirs.
        async with runtime.database.session() as session:
            rows = queries.stream_conversations(session, company_id, filters)
            if fmt == "csv":
                buffer = io.StringIO()
                writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS)
                writer.writeheader()
                async for row in rows:
                    writer.writerow(_export_record(row))
                    if buffer.tell() > 64_000:
                        yield buffer.getvalue()
                        buffer.seek(0)
                        buffer.truncate()
                yield buffer.getvalue()
            else:
                yield "["
                first = True
                async for row in rows:
                    yield ("" if first else ",\n") + json.dumps(_export_record(row))
                    first = False
                yield "]\n"

    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    return StreamingResponse(body(), media_type=media,
                             headers={"Content-Disposition": f'attachment; filename="conversations.{fmt}"'})


@router.get("/{conversation_id}")
async def conversation(request: Request, conversation_id: uuid.UUID, viewer: ViewerDep, session: SessionDep,
                       page_number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1) -> Response:
    found = await queries.thread(session, viewer.company_id, conversation_id, page_number, THREAD_PAGE_SIZE)
    return page(request, "conversation.html", viewer, thread=found, page_number=page_number, nav="conversations")


@router.get("/{conversation_id}/replies/{message_id}/trace")
async def reply_trace(request: Request, conversation_id: uuid.UUID, message_id: uuid.UUID, viewer: ViewerDep,
                      session: SessionDep) -> Response:
    """One reply's trace as a fragment: the playground shows it under the streamed answer."""
    message = await session.get(Message, message_id)
    if (message is None or message.company_id != viewer.company_id or message.conversation_id != conversation_id
            or message.role != "assistant"):
        raise NotFound("reply not found")
    facts = await queries.fact_texts(session, viewer.company_id,
                                     set((message.metadata_ or {}).get("facts_used", [])))
    return page(request, "_trace.html", viewer, message=message, facts=facts)
