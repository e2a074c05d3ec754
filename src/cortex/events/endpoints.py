"""/v1/events (list, live stream, stream tokens), /v1/ws (the stream over a WebSocket) and /v1/webhooks
(endpoints, deliveries): thin routers."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import suppress
from datetime import UTC, datetime
from typing import Annotated, cast

from fastapi import APIRouter, Depends, Header, Query, Request, WebSocket, WebSocketDisconnect, status
from fastapi.responses import StreamingResponse
from starlette.requests import HTTPConnection

from cortex.auth import api_keys
from cortex.auth.deps import EventsAuth, WebhooksAuth, authenticate_api_key
from cortex.db.models import ApiKey
from cortex.events import repository, stream, webhooks
from cortex.events.outbox import EVENT_TYPES
from cortex.events.schemas import (
    DeliveryPublic,
    DeliveryStatus,
    EventPublic,
    SecretRotated,
    StreamToken,
    WebhookCreate,
    WebhookCreated,
    WebhookPublic,
    WebhookUpdate,
)
from cortex.kit.deps import RuntimeDep, SessionDep
from cortex.kit.errors import CortexError, Forbidden, InvalidQuery, Unauthorized
from cortex.kit.pagination import ListParams, Page, list_query
from cortex.kit.runtime import Runtime

events_router = APIRouter(prefix="/v1/events", tags=["events"])
webhooks_router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
ws_router = APIRouter(tags=["events"])

TypeFilter = Annotated[list[Annotated[str, Query(max_length=64)]] | None,
                       Query(alias="type", description="Only these types (repeat the parameter or comma-separate).")]


def _types(raw: list[str] | None) -> list[str] | None:
    if not raw:
        return None
    types = [part.strip() for value in raw for part in value.split(",") if part.strip()]
    unknown = sorted(set(types) - set(EVENT_TYPES))
    if unknown:
        raise InvalidQuery("type", f"unknown event types: {', '.join(unknown)}")
    return types or None


@events_router.get("", response_model=Page[EventPublic])
async def list_events(principal: EventsAuth, session: SessionDep,
                      page: Annotated[ListParams, list_query(repository.EVENT_LISTING)], type: TypeFilter = None,
                      after: Annotated[uuid.UUID | None, Query(description="Only events after this one.")] = None,
                      ) -> Page[EventPublic]:
    return await repository.list_events(session, principal.company_id, page, types=_types(type), after=after)


@events_router.post("/stream-token", response_model=StreamToken)
async def stream_token(principal: EventsAuth, runtime: RuntimeDep) -> StreamToken:
    token, expires_at = stream.issue_stream_token(runtime, principal.company_id, principal.key_id)
    return StreamToken(token=token, expires_at=expires_at)


async def _stream_company(connection: HTTPConnection, runtime: Runtime, token: str | None) -> uuid.UUID:
    """An API key with the `events` scope, or (for EventSource and browser WebSockets, which send no
    headers) a stream token whose key is still live and still holds the scope."""
    if token is None or connection.headers.get("authorization"):
        # The key check reads only the headers and the connection's state, which a WebSocket has too.
        principal = await authenticate_api_key(cast(Request, connection), runtime)
        if not api_keys.has_scope(list(principal.scopes), "events"):
            raise Forbidden("this API key lacks the 'events' scope")
        return principal.company_id
    claims = stream.read_stream_token(runtime, token)
    if claims is None:
        raise Unauthorized("invalid or expired stream token")
    company_id, key_id = claims
    async with runtime.database.session() as session:
        key = await session.get(ApiKey, key_id)
    if (key is None or key.company_id != company_id or key.revoked_at is not None
            or (key.expires_at is not None and key.expires_at <= datetime.now(UTC))):
        raise Unauthorized("the API key behind this stream token is no longer valid")
    if not api_keys.has_scope(list(key.scopes), "events"):
        raise Forbidden("this API key lacks the 'events' scope")
    return company_id


async def stream_company(request: Request, runtime: RuntimeDep,
                         token: Annotated[str | None, Query(max_length=4096)] = None) -> uuid.UUID:
    return await _stream_company(request, runtime, token)


async def _start(runtime: Runtime, company_id: uuid.UUID, resume: uuid.UUID | None) -> repository.Position | None:
    async with runtime.database.session() as session:
        return (await repository.position_of(session, company_id, resume) if resume
                else await repository.latest_position(session, company_id))


@events_router.get("/stream", response_class=StreamingResponse,
                   responses={200: {"content": {"text/event-stream": {}}}})
async def event_stream(runtime: RuntimeDep, company_id: Annotated[uuid.UUID, Depends(stream_company)],
                       type: TypeFilter = None,
                       after: Annotated[uuid.UUID | None, Query(description="Resume after this event.")] = None,
                       last_event_id: Annotated[uuid.UUID | None, Header(alias="Last-Event-ID")] = None,
                       ) -> StreamingResponse:
    types = _types(type)
    start = await _start(runtime, company_id, last_event_id or after)
    return StreamingResponse(stream.sse(runtime, company_id, types, start), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@webhooks_router.post("", response_model=WebhookCreated, status_code=status.HTTP_201_CREATED)
async def create_webhook(body: WebhookCreate, principal: WebhooksAuth, session: SessionDep,
                         runtime: RuntimeDep) -> WebhookCreated:
    return await webhooks.create(session, runtime, principal.company_id, body)


@webhooks_router.get("", response_model=Page[WebhookPublic])
async def list_webhooks(principal: WebhooksAuth, session: SessionDep,
                        page: Annotated[ListParams, list_query(webhooks.WEBHOOK_LISTING)]) -> Page[WebhookPublic]:
    return await webhooks.list_endpoints(session, principal.company_id, page)


@webhooks_router.get("/{webhook_id}", response_model=WebhookPublic)
async def get_webhook(webhook_id: uuid.UUID, principal: WebhooksAuth, session: SessionDep) -> WebhookPublic:
    return webhooks.to_public(await webhooks.get_endpoint(session, principal.company_id, webhook_id))


@webhooks_router.patch("/{webhook_id}", response_model=WebhookPublic)
async def update_webhook(webhook_id: uuid.UUID, body: WebhookUpdate, principal: WebhooksAuth, session: SessionDep,
                         runtime: RuntimeDep) -> WebhookPublic:
    return await webhooks.update(session, runtime, principal.company_id, webhook_id, body)


@webhooks_router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook(webhook_id: uuid.UUID, principal: WebhooksAuth, session: SessionDep) -> None:
    await webhooks.delete(session, principal.company_id, webhook_id)


@webhooks_router.post("/{webhook_id}/rotate-secret", response_model=SecretRotated)
async def rotate_secret(webhook_id: uuid.UUID, principal: WebhooksAuth, session: SessionDep,
                        runtime: RuntimeDep) -> SecretRotated:
    return await webhooks.rotate_secret(session, runtime, principal.company_id, webhook_id)


@webhooks_router.post("/{webhook_id}/test", response_model=DeliveryPublic, status_code=status.HTTP_202_ACCEPTED)
async def test_webhook(webhook_id: uuid.UUID, principal: WebhooksAuth, session: SessionDep) -> DeliveryPublic:
    return await webhooks.send_test(session, principal.company_id, webhook_id)


@webhooks_router.get("/{webhook_id}/deliveries", response_model=Page[DeliveryPublic])
async def list_deliveries(webhook_id: uuid.UUID, principal: WebhooksAuth, session: SessionDep,
                          page: Annotated[ListParams, list_query(webhooks.DELIVERY_LISTING)],
                          delivery_status: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
                          ) -> Page[DeliveryPublic]:
    return await webhooks.list_deliveries(session, principal.company_id, webhook_id, page, delivery_status)


@webhooks_router.post("/{webhook_id}/deliveries/{delivery_id}/redeliver", response_model=DeliveryPublic,
                      status_code=status.HTTP_202_ACCEPTED)
async def redeliver(webhook_id: uuid.UUID, delivery_id: uuid.UUID, principal: WebhooksAuth,
                    session: SessionDep) -> DeliveryPublic:
    return await webhooks.redeliver(session, principal.company_id, webhook_id, delivery_id)


# Close codes of a refused WebSocket (after the handshake, so that a browser can read them): 4000 + HTTP status.
_WS_CLOSE_BASE = 4000


@ws_router.websocket("/v1/ws")
async def events_websocket(websocket: WebSocket, type: TypeFilter = None,
                           after: Annotated[uuid.UUID | None, Query()] = None,
                           token: Annotated[str | None, Query(max_length=4096)] = None) -> None:
    """The live events of GET /v1/events/stream over a WebSocket: each event as a JSON text message."""
    runtime: Runtime = websocket.app.state.runtime
    try:
        company_id = await _stream_company(websocket, runtime, token)
        types = _types(type)
        # Before the handshake completes: every event committed after the client connected is sent.
        start = await _start(runtime, company_id, after)
    except CortexError as exc:
        await websocket.accept()
        await websocket.close(code=_WS_CLOSE_BASE + exc.status_code, reason=exc.detail[:120])
        return
    await websocket.accept()

    async def send_events() -> None:
        async for message in stream.websocket_messages(runtime, company_id, types, start):
            await websocket.send_text(message)

    sender = asyncio.create_task(send_events())
    try:
        while True:  # the client only ever closes; anything it sends is ignored
            received = await websocket.receive()
            if received["type"] == "websocket.disconnect":
                break
    finally:
        sender.cancel()
        with suppress(asyncio.CancelledError, WebSocketDisconnect):
            await sender
