"""Webhook deliveries end to end: a real worker, a loopback receiver that verifies Standard Webhooks signatures."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.responses import PlainTextResponse

from cortex.events.models import Event, WebhookEndpoint
from cortex.events.tasks import DELIVERY_RETRY
from cortex.jobs.system import JobSystem
from cortex.kit.runtime import Runtime
from tests.events.conftest import create_webhook, deliveries, eventually, verified
from tests.support import Tenant
from tests.webhook_target import WebhookTarget


def status(code: int, headers: dict[str, str] | None = None) -> Any:
    return lambda call: PlainTextResponse(f"answer {code}", status_code=code, headers=headers)


async def send_test(client: httpx.AsyncClient, tenant: Tenant, webhook_id: str) -> dict[str, Any]:
    response = await client.post(f"/v1/webhooks/{webhook_id}/test", headers=tenant.headers)
    assert response.status_code == 202, response.text
    data: dict[str, Any] = response.json()
    return data


async def finished(client: httpx.AsyncClient, tenant: Tenant, webhook_id: str, delivery_id: str) -> Any:
    async def check() -> dict[str, Any] | None:
        for item in await deliveries(client, tenant, webhook_id):
            if item["id"] == delivery_id and item["status"] != "pending":
                return item
        return None
    return await eventually(check)


async def test_a_delivery_follows_standard_webhooks_and_verifies(
        client: httpx.AsyncClient, tenant: Tenant, webhooks: WebhookTarget, worker: JobSystem) -> None:
    hook = await create_webhook(client, tenant, webhooks, description="crm")
    assert hook["secret"].startswith("whsec_")
    delivery = await send_test(client, tenant, hook["id"])
    done = await finished(client, tenant, hook["id"], delivery["id"])
    assert done["status"] == "delivered" and done["attempt_count"] == 1
    [call] = webhooks.calls
    body = verified(call, hook["secret"])
    assert body["type"] == "webhook.test" and body["data"]["webhook_id"] == hook["id"]
    assert call.headers["webhook-id"] == delivery["event_id"]
    assert call.headers["webhook-signature"].startswith("v1,")
    datetime.fromisoformat(body["timestamp"])
    with pytest.raises(WebhookVerificationError):
        verified(call, "whsec_" + "A" * 32)
    # The secret is never shown again.
    shown = await client.get(f"/v1/webhooks/{hook['id']}", headers=tenant.headers)
    assert "secret" not in shown.json()


async def test_a_500_is_retried_and_the_event_delivered_once(
        client: httpx.AsyncClient, tenant: Tenant, webhooks: WebhookTarget, worker: JobSystem) -> None:
    webhooks.answer_in_order(status(500))
    hook = await create_webhook(client, tenant, webhooks)
    delivery = await send_test(client, tenant, hook["id"])
    done = await finished(client, tenant, hook["id"], delivery["id"])
    assert done["status"] == "delivered"
    assert [a["status_code"] for a in done["attempts"]] == [500, 200]
    assert done["attempts"][0]["response_excerpt"] == "answer 500"
    assert done["attempts"][0]["next_attempt_at"] is not None
    # Same webhook-id on the retry, a signature that verifies on each.
    assert [c.headers["webhook-id"] for c in webhooks.calls] == [delivery["event_id"]] * 2
    for call in webhooks.calls:
        verified(call, hook["secret"])


async def test_a_410_disables_the_endpoint_and_says_so(
        client: httpx.AsyncClient, tenant: Tenant, webhooks: WebhookTarget, worker: JobSystem) -> None:
    webhooks.answer = lambda call: status(410 if call.path == "/hooks" else 200)(call)
    hook = await create_webhook(client, tenant, webhooks, event_types=["webhook.test"])
    watcher = await create_webhook(client, tenant, webhooks, event_types=["webhook.disabled"],
                                   url=f"{webhooks.base_url}/watch")
    delivery = await send_test(client, tenant, hook["id"])
    done = await finished(client, tenant, hook["id"], delivery["id"])
    assert done["status"] == "failed" and done["attempt_count"] == 1
    shown = (await client.get(f"/v1/webhooks/{hook['id']}", headers=tenant.headers)).json()
    assert shown["enabled"] is False and "410" in shown["disabled_reason"]
    events = (await client.get("/v1/events", params={"type": "webhook.disabled"}, headers=tenant.headers)).json()
    assert [e["data"]["webhook_id"] for e in events["items"]] == [hook["id"]]
    # The other endpoint, subscribed to it, is told.
    told = await eventually(lambda: _calls_to_watcher(webhooks, watcher["secret"]))
    assert told[0]["data"]["webhook_id"] == hook["id"]
    # A disabled endpoint takes no test and no redelivery.
    assert (await client.post(f"/v1/webhooks/{hook['id']}/test", headers=tenant.headers)).status_code == 409


async def _calls_to_watcher(target: WebhookTarget, secret: str) -> list[Any]:
    found = []
    for call in target.calls:
        try:
            found.append(verified(call, secret))
        except WebhookVerificationError:
            pass
    return found


async def test_during_rotation_both_secrets_sign(
        client: httpx.AsyncClient, tenant: Tenant, webhooks: WebhookTarget, worker: JobSystem) -> None:
    hook = await create_webhook(client, tenant, webhooks)
    rotated = await client.post(f"/v1/webhooks/{hook['id']}/rotate-secret", headers=tenant.headers)
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != hook["secret"]
    delivery = await send_test(client, tenant, hook["id"])
    await finished(client, tenant, hook["id"], delivery["id"])
    [call] = webhooks.calls
    assert len(call.headers["webhook-signature"].split(" ")) == 2
    verified(call, hook["secret"])
    verified(call, new_secret)


async def test_retry_after_is_honoured(client: httpx.AsyncClient, tenant: Tenant, webhooks: WebhookTarget,
                                       worker: JobSystem) -> None:
    webhooks.answer_in_order(status(503, {"Retry-After": "2"}))
    hook = await create_webhook(client, tenant, webhooks)
    delivery = await send_test(client, tenant, hook["id"])
    done = await finished(client, tenant, hook["id"], delivery["id"])
    first, second = done["attempts"]
    wait = (datetime.fromisoformat(first["next_attempt_at"]) - datetime.fromisoformat(first["attempted_at"]))
    assert wait.total_seconds() >= 2
    assert (datetime.fromisoformat(second["attempted_at"])
            >= datetime.fromisoformat(first["next_attempt_at"]))


async def test_an_endpoint_failing_for_too_long_is_disabled(
        client: httpx.AsyncClient, tenant: Tenant, webhooks: WebhookTarget, worker: JobSystem,
        runtime: Runtime) -> None:
    runtime.settings.webhook_disable_after_seconds = 0.3
    runtime.settings.webhook_retry_schedule_seconds = [0.2] * 20
    try:
        webhooks.answer = status(500)
        hook = await create_webhook(client, tenant, webhooks)
        delivery = await send_test(client, tenant, hook["id"])
        done = await finished(client, tenant, hook["id"], delivery["id"])
    finally:
        runtime.settings.webhook_disable_after_seconds = 5 * 86400
    assert done["status"] == "failed" and 2 <= done["attempt_count"] < 20
    shown = (await client.get(f"/v1/webhooks/{hook['id']}", headers=tenant.headers)).json()
    assert shown["enabled"] is False and shown["failing_since"] is not None
    # Enabling it again is a fresh start.
    enabled = await client.patch(f"/v1/webhooks/{hook['id']}", json={"enabled": True}, headers=tenant.headers)
    assert enabled.json()["enabled"] is True and enabled.json()["failing_since"] is None


async def test_retries_stop_at_the_end_of_the_schedule(
        client: httpx.AsyncClient, tenant: Tenant, webhooks: WebhookTarget, worker: JobSystem) -> None:
    webhooks.answer = status(500)
    hook = await create_webhook(client, tenant, webhooks)
    delivery = await send_test(client, tenant, hook["id"])
    done = await finished(client, tenant, hook["id"], delivery["id"])
    assert done["status"] == "failed" and done["attempt_count"] == 4  # the first and the three retries
    assert done["attempts"][-1]["next_attempt_at"] is None


async def test_redelivery_sends_the_same_event_again(
        client: httpx.AsyncClient, tenant: Tenant, webhooks: WebhookTarget, worker: JobSystem) -> None:
    hook = await create_webhook(client, tenant, webhooks)
    delivery = await send_test(client, tenant, hook["id"])
    await finished(client, tenant, hook["id"], delivery["id"])
    path = f"/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}/redeliver"
    again = await client.post(path, headers=tenant.headers)
    assert again.status_code == 202, again.text
    assert again.json()["status"] == "pending"
    busy = await client.post(path, headers=tenant.headers)
    assert busy.status_code in (202, 409)  # 409 while that redelivery is still pending
    await eventually(lambda: _count(webhooks, 2))
    assert {c.headers["webhook-id"] for c in webhooks.calls} == {delivery["event_id"]}


async def _count(target: WebhookTarget, n: int) -> bool:
    return len(target.calls) >= n


async def test_a_private_address_is_refused_unless_allowed(
        client: httpx.AsyncClient, tenant: Tenant, webhooks: WebhookTarget, worker: JobSystem,
        runtime: Runtime) -> None:
    hook = await create_webhook(client, tenant, webhooks)
    runtime.settings.allow_private_webhooks = False
    try:
        refused = await client.post("/v1/webhooks", json={"url": webhooks.base_url}, headers=tenant.headers)
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"][0]["loc"] == ["body", "url"]
        # An endpoint created while allowed is checked again on every attempt.
        delivery = await send_test(client, tenant, hook["id"])
        attempts = await eventually(lambda: _attempts(client, tenant, hook["id"], delivery["id"]))
    finally:
        runtime.settings.allow_private_webhooks = True
    assert attempts[0]["status_code"] is None and "refused" in attempts[0]["error"]
    assert webhooks.calls == []


async def _attempts(client: httpx.AsyncClient, tenant: Tenant, webhook_id: str, delivery_id: str) -> list[Any]:
    for item in await deliveries(client, tenant, webhook_id):
        if item["id"] == delivery_id:
            return list(item["attempts"])
    return []


async def test_an_event_of_a_rolled_back_transaction_is_neither_stored_nor_sent(
        client: httpx.AsyncClient, tenant: Tenant, webhooks: WebhookTarget, worker: JobSystem,
        runtime: Runtime) -> None:
    from cortex.events import outbox

    await create_webhook(client, tenant, webhooks)

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with runtime.database.session() as session:
            await outbox.record(session, tenant.company_id, "cache.flushed", {"entries": 1})
            raise Boom
    async with runtime.database.session() as session:
        kept = await outbox.record(session, tenant.company_id, "cache.flushed", {"entries": 2})
    await eventually(lambda: _count(webhooks, 1))
    async with runtime.database.session() as session:
        stored = (await session.scalars(select(Event.id).where(Event.company_id == tenant.company_id,
                                                               Event.type == "cache.flushed"))).all()
    assert stored == [kept]
    assert [c.json()["data"]["entries"] for c in webhooks.calls] == [2]


async def test_only_subscribed_types_are_sent(client: httpx.AsyncClient, tenant: Tenant, webhooks: WebhookTarget,
                                              worker: JobSystem, runtime: Runtime) -> None:
    from cortex.events import outbox

    await create_webhook(client, tenant, webhooks, event_types=["api_key.created"])
    async with runtime.database.session() as session:
        await outbox.record(session, tenant.company_id, "cache.flushed", {"entries": 1})
        await outbox.record(session, tenant.company_id, "api_key.created", {"key_id": str(uuid.uuid4())})
    await eventually(lambda: _count(webhooks, 1))
    assert [c.json()["type"] for c in webhooks.calls] == ["api_key.created"]




async def test_a_delivery_whose_job_crashes_on_every_retry_is_failed_not_left_pending(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, webhooks: WebhookTarget, worker: JobSystem,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Two runs, no wait between them: the job system gives up after the second crash.
    monkeypatch.setattr(DELIVERY_RETRY, "max_attempts", 1)
    monkeypatch.setattr(DELIVERY_RETRY, "exponential_wait", 0)
    hook = await create_webhook(client, tenant, webhooks)
    async with runtime.database.session() as session:  # a secret that no longer decrypts: every run raises
        await session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == uuid.UUID(hook["id"]))
                              .values(secret_encrypted="not-a-token"))
    delivery = await send_test(client, tenant, hook["id"])
    done = await finished(client, tenant, hook["id"], delivery["id"])
    assert done["status"] == "failed" and done["next_attempt_at"] is None
    assert done["attempts"][-1]["status_code"] is None
    assert done["attempts"][-1]["error"].startswith("gave up: the delivery job failed every retry")
    assert webhooks.calls == []
