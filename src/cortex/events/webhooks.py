"""Webhook endpoints: create, read, change, delete, rotate the secret, test; the delivery log and redelivery.

Secrets are stored encrypted (SecretBox) and leave the service only in the answers to creation and
rotation. Every query is scoped to the caller's company: another company's endpoint is a 404.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.events import outbox, signing
from cortex.events.delivery import schedule_attempt
from cortex.events.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from cortex.events.schemas import (
    AttemptPublic,
    DeliveryPublic,
    SecretRotated,
    WebhookCreate,
    WebhookCreated,
    WebhookPublic,
    WebhookUpdate,
)
from cortex.kit.errors import Conflict, InvalidInput, NotFound
from cortex.kit.pagination import Listing, Page, PageParams, paginate
from cortex.kit.runtime import Runtime
from cortex.kit.url_guard import BlockedUrl, check_url


def to_public(endpoint: WebhookEndpoint) -> WebhookPublic:
    return WebhookPublic(id=endpoint.id, url=endpoint.url, event_types=endpoint.event_types,
                         description=endpoint.description, enabled=endpoint.enabled,
                         disabled_reason=endpoint.disabled_reason, failing_since=endpoint.failing_since,
                         created_at=endpoint.created_at, updated_at=endpoint.updated_at)


async def _check_url(runtime: Runtime, url: str) -> None:
    try:
        await check_url(url, allow_private=runtime.settings.allow_private_webhooks)
    except BlockedUrl as exc:
        raise InvalidInput("url", str(exc)) from None
    except ValueError:  # urlsplit's own complaints (a broken IPv6 literal, ...)
        raise InvalidInput("url", "not a valid URL") from None


async def get_endpoint(session: AsyncSession, company_id: uuid.UUID, webhook_id: uuid.UUID, *,
                       for_update: bool = False) -> WebhookEndpoint:
    statement = select(WebhookEndpoint).where(WebhookEndpoint.id == webhook_id,
                                              WebhookEndpoint.company_id == company_id)
    endpoint = await session.scalar(statement.with_for_update() if for_update else statement)
    if endpoint is None:
        raise NotFound("webhook not found")
    return endpoint


async def create(session: AsyncSession, runtime: Runtime, company_id: uuid.UUID, body: WebhookCreate) -> WebhookCreated:
    await _check_url(runtime, body.url)
    secret = signing.new_secret()
    endpoint = WebhookEndpoint(company_id=company_id, url=body.url, event_types=body.event_types,
                               description=body.description, enabled=body.enabled,
                               secret_encrypted=runtime.secrets.encrypt_json({"secret": secret}))
    session.add(endpoint)
    await session.flush()
    await session.refresh(endpoint)
    return WebhookCreated(**to_public(endpoint).model_dump(), secret=secret)


WEBHOOK_LISTING = Listing(sort={"created_at": [WebhookEndpoint.created_at], "updated_at": [WebhookEndpoint.updated_at],
                               "url": [WebhookEndpoint.url]},
                          created=WebhookEndpoint.created_at, updated=WebhookEndpoint.updated_at,
                          tiebreak=[WebhookEndpoint.id])
DELIVERY_LISTING = Listing(sort={"created_at": [WebhookDelivery.created_at],
                                 "updated_at": [WebhookDelivery.updated_at]},
                           created=WebhookDelivery.created_at, updated=WebhookDelivery.updated_at,
                           tiebreak=[WebhookDelivery.id])


async def list_endpoints(session: AsyncSession, company_id: uuid.UUID, params: PageParams) -> Page[WebhookPublic]:
    statement = select(WebhookEndpoint).where(WebhookEndpoint.company_id == company_id)
    return await paginate(session, statement, params, to_public, listing=WEBHOOK_LISTING)


async def update(session: AsyncSession, runtime: Runtime, company_id: uuid.UUID, webhook_id: uuid.UUID,
                 body: WebhookUpdate) -> WebhookPublic:
    endpoint = await get_endpoint(session, company_id, webhook_id, for_update=True)
    if body.url is not None:
        await _check_url(runtime, body.url)
        endpoint.url = body.url
    if body.event_types is not None:
        endpoint.event_types = body.event_types
    if body.description is not None:
        endpoint.description = body.description
    if body.enabled is not None:
        if body.enabled and not endpoint.enabled:  # a fresh start: the failing streak and its reason go
            endpoint.failing_since = None
            endpoint.disabled_reason = None
        endpoint.enabled = body.enabled
    await session.flush()
    await session.refresh(endpoint)
    return to_public(endpoint)


async def delete(session: AsyncSession, company_id: uuid.UUID, webhook_id: uuid.UUID) -> None:
    endpoint = await get_endpoint(session, company_id, webhook_id, for_update=True)
    await session.delete(endpoint)  # deliveries cascade; their queued jobs then find nothing to do
    await session.flush()


async def rotate_secret(session: AsyncSession, runtime: Runtime, company_id: uuid.UUID,
                        webhook_id: uuid.UUID) -> SecretRotated:
    endpoint = await get_endpoint(session, company_id, webhook_id, for_update=True)
    secret = signing.new_secret()
    expires_at = datetime.now(UTC) + timedelta(seconds=runtime.settings.webhook_secret_overlap_seconds)
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted
    endpoint.previous_secret_expires_at = expires_at
    endpoint.secret_encrypted = runtime.secrets.encrypt_json({"secret": secret})
    await session.flush()
    return SecretRotated(id=endpoint.id, secret=secret, previous_secret_expires_at=expires_at)


async def _deliveries_public(session: AsyncSession, rows: list[tuple[WebhookDelivery, str]]) -> list[DeliveryPublic]:
    ids = [delivery.id for delivery, _ in rows]
    attempts: dict[uuid.UUID, list[AttemptPublic]] = {i: [] for i in ids}
    if ids:
        for attempt in (await session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids))
                                              .order_by(WebhookAttempt.attempted_at))).all():
            attempts[attempt.delivery_id].append(AttemptPublic(
                attempted_at=attempt.attempted_at, status_code=attempt.status_code, duration_ms=attempt.duration_ms,
                response_excerpt=attempt.response_excerpt, error=attempt.error,
                next_attempt_at=attempt.next_attempt_at))
    return [DeliveryPublic(id=d.id, webhook_id=d.endpoint_id, event_id=d.event_id, event_type=event_type,
                           status=d.status, attempt_count=d.attempt_count, next_attempt_at=d.next_attempt_at,
                           last_status_code=d.last_status_code, created_at=d.created_at, updated_at=d.updated_at,
                           attempts=attempts[d.id])
            for d, event_type in rows]


async def list_deliveries(session: AsyncSession, company_id: uuid.UUID, webhook_id: uuid.UUID,
                          params: PageParams, status: str | None = None) -> Page[DeliveryPublic]:
    await get_endpoint(session, company_id, webhook_id)
    statement = (select(WebhookDelivery)
                 .where(WebhookDelivery.endpoint_id == webhook_id, WebhookDelivery.company_id == company_id))
    if status is not None:
        statement = statement.where(WebhookDelivery.status == status)
    page = await paginate(session, statement, params, lambda delivery: delivery, listing=DELIVERY_LISTING)
    event_ids = {delivery.event_id for delivery in page.items}
    types = dict((await session.execute(select(Event.id, Event.type).where(Event.id.in_(event_ids)))).tuples().all())
    items = await _deliveries_public(session, [(delivery, types[delivery.event_id]) for delivery in page.items])
    return Page[DeliveryPublic](items=items, total_count=page.total_count, page=page.page, page_size=page.page_size)


async def get_delivery(session: AsyncSession, company_id: uuid.UUID, webhook_id: uuid.UUID,
                       delivery_id: uuid.UUID) -> DeliveryPublic:
    row = (await session.execute(
        select(WebhookDelivery, Event.type).join(Event, Event.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == webhook_id,
               WebhookDelivery.company_id == company_id))).first()
    if row is None:
        raise NotFound("delivery not found")
    return (await _deliveries_public(session, [(row[0], row[1])]))[0]


async def redeliver(session: AsyncSession, company_id: uuid.UUID, webhook_id: uuid.UUID,
                    delivery_id: uuid.UUID) -> DeliveryPublic:
    endpoint = await get_endpoint(session, company_id, webhook_id)
    delivery = await session.scalar(select(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == endpoint.id,
        WebhookDelivery.company_id == company_id).with_for_update())
    if delivery is None:
        raise NotFound("delivery not found")
    if not endpoint.enabled:
        raise Conflict("the webhook is disabled: enable it first")
    if delivery.status == "pending":
        raise Conflict("this delivery is still being attempted")
    # Same event, same webhook-id: a receiver that already has it can tell.
    delivery.status, delivery.schedule_index, delivery.job_token = "pending", 0, uuid.uuid4()
    delivery.next_attempt_at = datetime.now(UTC)
    await schedule_attempt(session, delivery)
    return await get_delivery(session, company_id, webhook_id, delivery_id)


async def send_test(session: AsyncSession, company_id: uuid.UUID, webhook_id: uuid.UUID) -> DeliveryPublic:
    endpoint = await get_endpoint(session, company_id, webhook_id)
    if not endpoint.enabled:
        raise Conflict("the webhook is disabled: enable it first")
    event_id = await outbox.record(session, company_id, "webhook.test",
                                   {"webhook_id": str(endpoint.id), "message": "a test event from Cortex"},
                                   endpoint_id=endpoint.id)
    delivery_id = await session.scalar(select(WebhookDelivery.id).where(
        WebhookDelivery.event_id == event_id, WebhookDelivery.endpoint_id == endpoint.id))
    assert delivery_id is not None
    return await get_delivery(session, company_id, webhook_id, delivery_id)
