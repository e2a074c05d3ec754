"""One attempt of one webhook delivery, run by the `events.deliver_webhook` job.

The job reads what to send in one statement, sends outside any transaction, and records the attempt and
what follows (delivered in one statement; else, under row locks, the next retry deferred or given up). A job whose
token is no longer the delivery's (a redelivery replaced it, or a worker died after recording) does
nothing, so running a job twice sends at most one extra request with the same `webhook-id`.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import asyncpg
import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.events import outbox, signing
from cortex.events.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from cortex.jobs.defer import defer_in
from cortex.kit.runtime import Runtime
from cortex.kit.url_guard import BlockedUrl, GuardedTransport, check_url

logger = logging.getLogger(__name__)

SENDER = "webhook_sender"  # the component's name in Runtime.components
EXCERPT_BYTES = 2048


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    duration_ms: float
    excerpt: str | None
    error: str | None
    retry_after_seconds: float | None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_after(value: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds from now: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


class WebhookSender:
    """The HTTP client of outgoing webhooks: every connection through the URL guard, no redirects."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._client = httpx.AsyncClient(follow_redirects=False, transport=GuardedTransport(
            allow_private=lambda: runtime.settings.allow_private_webhooks))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, url: str, payload: str, headers: dict[str, str]) -> Outcome:
        settings = self.runtime.settings
        started = time.perf_counter()

        def elapsed() -> float:
            return round((time.perf_counter() - started) * 1000, 3)

        try:
            await check_url(url, allow_private=settings.allow_private_webhooks)
            async with self._client.stream("POST", url, content=payload.encode(), headers=headers,
                                           timeout=settings.webhook_timeout_seconds) as response:
                excerpt = bytearray()
                async for chunk in response.aiter_bytes():
                    excerpt.extend(chunk)
                    if len(excerpt) >= EXCERPT_BYTES:
                        break
                return Outcome(response.status_code, elapsed(),
                               bytes(excerpt[:EXCERPT_BYTES]).decode("utf-8", errors="replace"), None,
                               retry_after(response.headers.get("retry-after"), datetime.now(UTC)))
        except (BlockedUrl, httpx.InvalidURL, ValueError) as exc:
            return Outcome(None, elapsed(), None, f"refused: {exc}", None)
        except httpx.TimeoutException:
            return Outcome(None, elapsed(), None, "timed out", None)
        except httpx.HTTPError as exc:
            return Outcome(None, elapsed(), None, f"{type(exc).__name__}: {exc}"[:500], None)


def sender_of(runtime: Runtime) -> WebhookSender:
    sender = runtime.components.get(SENDER)
    if not isinstance(sender, WebhookSender):
        sender = WebhookSender(runtime)
        runtime.components[SENDER] = sender
    return sender


@dataclass(frozen=True)
class Prepared:
    url: str
    message_id: str
    payload: str
    secrets: list[str]


# The hot path is two statements on a pooled connection outside any transaction (no BEGIN/COMMIT round
# trips, no ORM): one reads what to send, one records a success. Failures take the locking path below.
_PREPARE = """
SELECT d.status, d.job_token, e.enabled, e.url, e.secret_encrypted, e.previous_secret_encrypted,
       e.previous_secret_expires_at, ev.id AS event_id, ev.type, ev.created_at, ev.data::text AS data
FROM webhook_deliveries AS d
JOIN webhook_endpoints AS e ON e.id = d.endpoint_id
JOIN events AS ev ON ev.id = d.event_id
WHERE d.id = $1
"""

# The attempt is logged whatever happened meanwhile; the delivery is delivered only if this job still
# holds it (its token, still pending), and a success ends the endpoint's failing streak.
_RECORD_SUCCESS = """
WITH attempt AS (
    INSERT INTO webhook_attempts (id, delivery_id, attempted_at, status_code, duration_ms, response_excerpt)
    VALUES (gen_random_uuid(), $1, $3, $4, $5, $6)
), delivery AS (
    UPDATE webhook_deliveries
    SET attempt_count = attempt_count + 1, last_status_code = $4, updated_at = now(),
        status = CASE WHEN job_token = $2 AND status = 'pending' THEN 'delivered' ELSE status END,
        next_attempt_at = CASE WHEN job_token = $2 AND status = 'pending' THEN NULL ELSE next_attempt_at END
    WHERE id = $1
    RETURNING endpoint_id, job_token = $2 AS current
)
UPDATE webhook_endpoints SET failing_since = NULL
WHERE id IN (SELECT endpoint_id FROM delivery WHERE current) AND failing_since IS NOT NULL
"""


@asynccontextmanager
async def _driver(runtime: Runtime) -> AsyncIterator[asyncpg.Connection]:
    async with runtime.database.connect().connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None  # a checked-out connection always has its asyncpg connection
        yield driver


async def _prepare(runtime: Runtime, delivery_id: uuid.UUID, token: uuid.UUID) -> Prepared | None:
    now = datetime.now(UTC)
    async with _driver(runtime) as driver:
        row = await driver.fetchrow(_PREPARE, delivery_id)
    if row is None:
        return None  # deleted with its endpoint or event
    if row["status"] != "pending" or row["job_token"] != token:
        return None
    if not row["enabled"]:
        async with runtime.database.session() as session:
            await session.execute(update(WebhookDelivery).where(
                WebhookDelivery.id == delivery_id, WebhookDelivery.job_token == token,
                WebhookDelivery.status == "pending").values(status="cancelled", next_attempt_at=None))
        return None
    secrets = [runtime.secrets.decrypt_json(row["secret_encrypted"])["secret"]]
    if (row["previous_secret_encrypted"] and row["previous_secret_expires_at"]
            and row["previous_secret_expires_at"] > now):
        secrets.append(runtime.secrets.decrypt_json(row["previous_secret_encrypted"])["secret"])
    return Prepared(row["url"], str(row["event_id"]),
                    signing.body(row["type"], row["created_at"], json.loads(row["data"])), secrets)


async def deliver(runtime: Runtime, delivery_id: uuid.UUID, token: uuid.UUID) -> None:
    prepared = await _prepare(runtime, delivery_id, token)
    if prepared is None:
        return
    attempted_at = datetime.now(UTC)
    headers = signing.headers(prepared.message_id, prepared.payload, prepared.secrets, attempted_at)
    outcome = await sender_of(runtime).send(prepared.url, prepared.payload, headers)
    runtime.telemetry.metrics.record_webhook_attempt(outcome.succeeded, outcome.status_code)
    if outcome.succeeded:
        async with _driver(runtime) as driver:
            await driver.execute(_RECORD_SUCCESS, delivery_id, token, attempted_at, outcome.status_code,
                                 outcome.duration_ms, outcome.excerpt)
        return
    await _record(runtime, delivery_id, token, attempted_at, outcome)


async def _record(runtime: Runtime, delivery_id: uuid.UUID, token: uuid.UUID, attempted_at: datetime,
                  outcome: Outcome) -> None:
    settings = runtime.settings
    async with runtime.database.session() as session:
        delivery = await session.scalar(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
                                        .with_for_update())
        if delivery is None:
            return
        endpoint = await session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.id == delivery.endpoint_id)
                                        .with_for_update())
        assert endpoint is not None  # the delivery cascades with it
        attempt = WebhookAttempt(delivery_id=delivery.id, attempted_at=attempted_at, status_code=outcome.status_code,
                                 duration_ms=outcome.duration_ms, response_excerpt=outcome.excerpt,
                                 error=outcome.error)
        session.add(attempt)
        delivery.attempt_count += 1
        delivery.last_status_code = outcome.status_code
        if delivery.job_token != token or delivery.status != "pending":
            return  # redelivered meanwhile: the newer job decides what follows
        now = datetime.now(UTC)
        if not endpoint.enabled and not outcome.succeeded:  # disabled while this attempt was under way
            delivery.status, delivery.next_attempt_at = "cancelled", None
            return
        if outcome.status_code == 410:
            delivery.status, delivery.next_attempt_at = "failed", None
            await disable(session, endpoint, "the endpoint answered 410 Gone")
            return
        endpoint.failing_since = endpoint.failing_since or attempted_at
        if (now - endpoint.failing_since).total_seconds() >= settings.webhook_disable_after_seconds:
            delivery.status, delivery.next_attempt_at = "failed", None
            await disable(session, endpoint, "every attempt failed for too long")
            return
        schedule = settings.webhook_retry_schedule_seconds
        if delivery.schedule_index >= len(schedule):
            delivery.status, delivery.next_attempt_at = "failed", None
            return
        wait = max(schedule[delivery.schedule_index], outcome.retry_after_seconds or 0.0)
        delivery.schedule_index += 1
        delivery.next_attempt_at = attempt.next_attempt_at = now + timedelta(seconds=wait)
        delivery.job_token = uuid.uuid4()
        await schedule_attempt(session, delivery)


async def job_crashed(runtime: Runtime, delivery_id: uuid.UUID, token: uuid.UUID, error: BaseException,
                      retry_at: datetime | None) -> None:
    """The delivery's job raised (not an answer from the endpoint: the database, a bug, a shutdown).

    `retry_at`: when the job system runs it again, which the delivery then says as its next attempt;
    None when it will not: the delivery is failed with the error as its last attempt, never left pending.
    """
    description = f"{type(error).__name__}: {error}"[:500]
    async with runtime.database.session() as session:
        delivery = await session.scalar(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
                                        .with_for_update())
        if delivery is None or delivery.job_token != token or delivery.status != "pending":
            return  # decided by another job meanwhile
        if retry_at is not None:
            delivery.next_attempt_at = retry_at
            return
        now = datetime.now(UTC)
        session.add(WebhookAttempt(delivery_id=delivery.id, attempted_at=now, status_code=None, duration_ms=0.0,
                                   error=f"gave up: the delivery job failed every retry ({description})"))
        delivery.status, delivery.next_attempt_at = "failed", None
    logger.error("webhook delivery %s failed for good: its job crashed on every retry (%s)", delivery_id, description)


async def schedule_attempt(session: AsyncSession, delivery: WebhookDelivery) -> None:
    """Defer the job of the delivery's next attempt (at `next_attempt_at`) in the session's transaction."""
    await session.flush()
    await defer_in(session, outbox.DELIVER_TASK, {"delivery_id": str(delivery.id), "token": str(delivery.job_token)},
                   queue=outbox.WEBHOOK_QUEUE, lock=f"webhook-delivery:{delivery.id}",
                   scheduled_at=delivery.next_attempt_at)


async def disable(session: AsyncSession, endpoint: WebhookEndpoint, reason: str) -> None:
    endpoint.enabled = False
    endpoint.disabled_reason = reason
    await session.flush()
    logger.warning("webhook endpoint %s disabled: %s", endpoint.id, reason)
    await outbox.record(session, endpoint.company_id, "webhook.disabled",
                        {"webhook_id": str(endpoint.id), "reason": reason})
