"""One attempt of one webhook delivery, run by the `events.deliver_webhook` job.

The job reads what to send in one short transaction, sends outside any transaction, and records the
attempt and what follows (delivered, the next retry deferred, or given up) in a second one. A job whose
token is no longer the delivery's (a redelivery replaced it, or a worker died after recording) does
nothing, so running a job twice sends at most one extra request with the same `webhook-id`.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.events import outbox, signing
from cortex.events.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
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


async def _prepare(runtime: Runtime, delivery_id: uuid.UUID, token: uuid.UUID) -> Prepared | None:
    now = datetime.now(UTC)
    async with runtime.database.session() as session:
        row = (await session.execute(
            select(WebhookDelivery, WebhookEndpoint, Event)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .join(Event, Event.id == WebhookDelivery.event_id)
            .where(WebhookDelivery.id == delivery_id)
        )).first()
        if row is None:
            return None  # deleted with its endpoint or event
        delivery, endpoint, event = row
        if delivery.status != "pending" or delivery.job_token != token:
            return None
        if not endpoint.enabled:
            delivery.status = "cancelled"
            delivery.next_attempt_at = None
            return None
        secrets = [runtime.secrets.decrypt_json(endpoint.secret_encrypted)["secret"]]
        if (endpoint.previous_secret_encrypted and endpoint.previous_secret_expires_at
                and endpoint.previous_secret_expires_at > now):
            secrets.append(runtime.secrets.decrypt_json(endpoint.previous_secret_encrypted)["secret"])
        return Prepared(endpoint.url, str(event.id), signing.body(event.type, event.created_at, event.data), secrets)


async def deliver(runtime: Runtime, delivery_id: uuid.UUID, token: uuid.UUID) -> None:
    prepared = await _prepare(runtime, delivery_id, token)
    if prepared is None:
        return
    attempted_at = datetime.now(UTC)
    headers = signing.headers(prepared.message_id, prepared.payload, prepared.secrets, attempted_at)
    outcome = await sender_of(runtime).send(prepared.url, prepared.payload, headers)
    runtime.telemetry.metrics.record_webhook_attempt(outcome.succeeded, outcome.status_code)
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
        if outcome.succeeded:
            delivery.status, delivery.next_attempt_at = "delivered", None
            endpoint.failing_since = None
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
