"""Writing an event: one statement in the caller's transaction, which also queues its webhook deliveries.

Every domain calls `record(session, company_id, type, data)` next to the change the event reports, so
the event exists exactly when the change committed. The same statement makes one delivery row per
enabled endpoint of the company subscribed to the type and defers each delivery's job through
procrastinate's defer function (`cortex.jobs.defer` says why it is called from SQL); a company without
webhooks pays nothing more. The chat path writes its rows and all of a turn's events in one statement
(`written` gives it the SQL), so a turn pays no round trip for its events.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Event:
    """An event not yet written: what `rows_json` hands to the SQL of `written`."""

    type: str
    data: dict[str, Any]
    id: uuid.UUID = field(default_factory=uuid.uuid4)

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}")


# A relation of events to write, read from the JSON array bound as :events (see `rows_json`); `ord`
# keeps their order, so `seq` numbers them as they were listed.
EVENT_ROWS = """
    SELECT CAST(e.value->>'id' AS uuid) AS id, CAST(:company_id AS uuid) AS company_id,
           CAST(e.value->>'type' AS varchar) AS type, e.value->'data' AS data, e.ord AS ord
    FROM jsonb_array_elements(CAST(:events AS jsonb)) WITH ORDINALITY AS e(value, ord)"""


def written(rows: str) -> tuple[str, str]:
    """SQL that writes the events of relation `rows` (columns id, company_id, type, data, ord).

    Returns (CTEs to put in a WITH, an expression to select): the CTEs insert the events and one
    delivery row per enabled endpoint of the company subscribed to each type; the expression defers
    each delivery's job through procrastinate's defer function. A domain that writes a change and its
    events in one statement puts both in its own WITH (one round trip for a chat turn).
    """
    ctes = f"""written_events AS (
    INSERT INTO events (id, company_id, type, data)
    SELECT id, company_id, type, data FROM {rows} AS pending ORDER BY ord
    RETURNING id, company_id, type
), queued_deliveries AS (
    INSERT INTO webhook_deliveries (id, company_id, endpoint_id, event_id, job_token, next_attempt_at)
    SELECT gen_random_uuid(), endpoint.company_id, endpoint.id, written_events.id, gen_random_uuid(), now()
    FROM written_events JOIN webhook_endpoints AS endpoint ON endpoint.company_id = written_events.company_id
    WHERE endpoint.enabled
      AND (written_events.type = ANY(endpoint.event_types) OR '*' = ANY(endpoint.event_types))
    RETURNING id, job_token
)"""
    return ctes, _DEFER.format(deliveries="queued_deliveries")


_DEFER = """procrastinate_defer_jobs_v1(ARRAY(
    SELECT ROW(CAST(:queue AS varchar), CAST(:task AS varchar), 0, 'webhook-delivery:' || id::text, NULL,
               jsonb_build_object('delivery_id', id::text, 'token', job_token::text),
               NULL)::procrastinate_job_to_defer_v1
    FROM {deliveries}))"""


def rows_json(events: list[Event]) -> dict[str, Any]:
    """The bind parameters `EVENT_ROWS` and `written` need (besides :company_id)."""
    return {"events": json.dumps([{"id": str(e.id), "type": e.type, "data": e.data} for e in events], default=str),
            "queue": WEBHOOK_QUEUE, "task": DELIVER_TASK}


_ctes, _defer = written("event_rows")
_RECORD_MANY = text(f"WITH event_rows AS ({EVENT_ROWS}), {_ctes} SELECT {_defer}")

_RECORD_ONE = text("""
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
SELECT """ + _DEFER.format(deliveries="deliveries"))


async def record(session: AsyncSession, company_id: uuid.UUID, type: str, data: dict[str, Any], *,
                 endpoint_id: uuid.UUID | None = None) -> uuid.UUID:
    """Write the event (and queue its deliveries) in `session`'s transaction; returns its id.

    `data` holds ids and small fields (UUIDs and datetimes become strings). `endpoint_id` sends the
    event to that one endpoint only (a test delivery), whatever it subscribes to.
    """
    event = Event(type, data)
    await session.execute(_RECORD_ONE, {
        "id": str(event.id), "company_id": str(company_id), "type": type, "data": json.dumps(data, default=str),
        "endpoint_id": str(endpoint_id) if endpoint_id else None, "queue": WEBHOOK_QUEUE, "task": DELIVER_TASK,
    })
    return event.id


async def record_many(session: AsyncSession, company_id: uuid.UUID, events: list[Event]) -> None:
    """Several events of one company in one statement, in their order."""
    if events:
        await session.execute(_RECORD_MANY, {"company_id": str(company_id), **rows_json(events)})
