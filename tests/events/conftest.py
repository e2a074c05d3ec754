"""Shared pieces of the events tests: fast job and retry timings, a running worker, a receiver that verifies."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook
from starlette.responses import PlainTextResponse, Response

from cortex.jobs.system import JobSystem, job_system
from cortex.kit.runtime import Runtime
from tests.support import Tenant
from tests.webhook_target import Call, WebhookTarget

FAST = {
    "jobs_poll_seconds": 0.2, "jobs_heartbeat_seconds": 0.3, "jobs_stalled_after_seconds": 1.5,
    "jobs_shutdown_grace_seconds": 1.0,
    "webhook_retry_schedule_seconds": [0.2, 0.2, 0.2], "webhook_timeout_seconds": 5.0,
    "events_stream_poll_seconds": 0.5, "events_stream_heartbeat_seconds": 0.5,
}


@pytest.fixture(autouse=True)
def fast_timings(runtime: Runtime) -> Iterator[None]:
    saved = {name: getattr(runtime.settings, name) for name in FAST}
    for name, value in FAST.items():
        setattr(runtime.settings, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(runtime.settings, name, value)


@pytest.fixture
async def worker(runtime: Runtime) -> AsyncIterator[JobSystem]:
    jobs = job_system(runtime)
    jobs.serve()
    try:
        yield jobs
    finally:
        await jobs.aclose()


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 10.0, interval: float = 0.05) -> Any:
    """Wait until `check()` returns something truthy; returns it (fails the test on timeout)."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within}s (last: {result!r})")
        await asyncio.sleep(interval)


def verified(call: Call, secret: str) -> Any:
    """The body of a call whose Standard Webhooks signature `secret` verifies (raises otherwise)."""
    return Webhook(secret).verify(call.body, call.headers)


async def create_webhook(client: httpx.AsyncClient, tenant: Tenant, target: WebhookTarget,
                         **fields: Any) -> dict[str, Any]:
    body = {"url": f"{target.base_url}/hooks", "event_types": ["*"], **fields}
    response = await client.post("/v1/webhooks", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def deliveries(client: httpx.AsyncClient, tenant: Tenant, webhook_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=tenant.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


class IdempotentReceiver:
    """Verifies each call and applies each webhook-id once; holds its answers until `released` is set
    (at most `hold_seconds`), so a test can kill the sender while deliveries wait for their answer."""

    def __init__(self, secret: str, hold_seconds: float = 30) -> None:
        self.secret = secret
        self.hold_seconds = hold_seconds
        self.applied: list[str] = []
        self.released = threading.Event()

    async def __call__(self, call: Call) -> Response:
        verified(call, self.secret)
        message_id = call.headers["webhook-id"]
        if message_id not in self.applied:
            self.applied.append(message_id)
        await asyncio.to_thread(self.released.wait, self.hold_seconds)
        return PlainTextResponse("ok")
