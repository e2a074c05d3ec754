"""Writing an event: one statement in the caller's transaction, which also queues its webhook deliveries.

Every domain calls `record(session, company_id, type, data)` next to the change the event reports, so
the event exists exactly when the change committed. The same statement makes one delivery row per
enabled endpoint of the company subscribed to the type and defers each delivery's job through
procrastinate's defer function (`cortex.jobs.defer` says why it is called from SQL): a chat turn pays one
round trip per event, and a company without webhooks pays nothing more.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# Every type an endpoint may subscribe to (besides "*"); `message.*` events alone carry message text.
EVENT_TYPES = (
    "conversation.created",
    "message.received",
    "message.replied",
    "message.failed",
    "action.executed",
    "action.failed",
    "agent.handoff_requested",
    "memory.fact.created",
    "memory.fact.superseded",
    "customer.forgotten",
    "knowledge.document.ready",
    "knowledge.document.failed",
    "cache.flushed",
    "api_key.created",
    "api_key.revoked",
    "webhook.disabled",
    "webhook.test",
)

DELIVER_TASK = "events.deliver_webhook"
WEBHOOK_QUEUE = "webhooks"

_RECORD = text("""
WITH event AS (
    INSERT INTO events (id, company_id, type, data)
    VALUES (CAST(:id AS uuid), CAST(:company_id AS uuid), CAST(:type AS varchar), CAST(:data AS jsonb))
    RETURNING id, company_id, type
), deliveries AS (
    INSERT INTO webhook_deliveries (id, company_id, endpoint_id, event_id, job_token, next_attempt_at)
    SELECT gen_random_uuid(), endpoint.company_id, endpoint.id, event.id, gen_random_uuid(), now()
    FROM event JOIN webhook_endpoints AS endpoint ON endpoint.company_id = event.company_id
    WHERE CASE WHEN CAST(:endpoint_id AS uuid) IS NULL
               THEN endpoint.enabled AND (event.type = ANY(endpoint.event_types) OR '*' = ANY(endpoint.event_types))
               ELSE endpoint.id = CAST(:endpoint_id AS uuid) END
    RETURNING id, job_token
)
SELECT procrastinate_defer_jobs_v1(ARRAY(
    SELECT ROW(CAST(:queue AS varchar), CAST(:task AS varchar), 0, 'webhook-delivery:' || id::text, NULL,
               jsonb_build_object('delivery_id', id::text, 'token', job_token::text),
               NULL)::procrastinate_job_to_defer_v1
    FROM deliveries))
""")


async def record(session: AsyncSession, company_id: uuid.UUID, type: str, data: dict[str, Any], *,
                 endpoint_id: uuid.UUID | None = None) -> uuid.UUID:
    """Write the event (and queue its deliveries) in `session`'s transaction; returns its id.

    `data` holds ids and small fields (UUIDs and datetimes become strings). `endpoint_id` sends the
    event to that one endpoint only (a test delivery), whatever it subscribes to.
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    event_id = uuid.uuid4()
    await session.execute(_RECORD, {
        "id": str(event_id), "company_id": str(company_id), "type": type, "data": json.dumps(data, default=str),
        "endpoint_id": str(endpoint_id) if endpoint_id else None, "queue": WEBHOOK_QUEUE, "task": DELIVER_TASK,
    })
    return event_id
