"""A worker process killed (SIGKILL) in the middle of its deliveries: after a restart every event arrives, and a
receiver that keys on `webhook-id` (as Standard Webhooks asks) applies each exactly once."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal

import httpx
from sqlalchemy import select

from cortex.app import build_runtime
from cortex.events import outbox
from cortex.events.models import WebhookDelivery
from cortex.jobs.system import job_system
from cortex.kit.runtime import Runtime
from cortex.settings import Settings
from tests.events.conftest import IdempotentReceiver, create_webhook, eventually
from tests.support import Tenant
from tests.webhook_target import WebhookTarget

EVENTS = 5


def _run_worker(settings: Settings) -> None:
    # A forked child of the test process: the modules are loaded already, so the worker starts in moments.
    # The parent's loop was running at the fork; this process makes its own.
    asyncio.events._set_running_loop(None)

    async def run() -> None:
        runtime = await build_runtime(settings, migrate=False)
        await job_system(runtime).run_worker(install_signal_handlers=False)

    asyncio.run(run())




async def test_a_killed_worker_delivers_everything_after_restart_and_nothing_twice(
        client: httpx.AsyncClient, tenant: Tenant, webhooks: WebhookTarget, runtime: Runtime) -> None:
    hook = await create_webhook(client, tenant, webhooks, event_types=["cache.flushed"])
    receiver = IdempotentReceiver(hook["secret"])
    webhooks.answer = receiver
    child = multiprocessing.get_context("fork").Process(target=_run_worker, args=(runtime.settings.model_copy(),))
    child.start()
    restarted = job_system(runtime)
    try:
        async with runtime.database.session() as session:
            event_ids = [str(await outbox.record(session, tenant.company_id, "cache.flushed", {"entries": i}))
                         for i in range(EVENTS)]

        async def all_in_flight() -> bool:
            return len(webhooks.calls) >= EVENTS

        await eventually(all_in_flight, within=30)
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
        receiver.released.set()
        restarted.serve()  # notices the dead worker's stale heartbeat and hands its jobs back

        async def all_delivered() -> bool:
            async with runtime.database.session() as session:
                statuses = (await session.scalars(select(WebhookDelivery.status).where(
                    WebhookDelivery.company_id == tenant.company_id))).all()
            return sorted(statuses) == ["delivered"] * EVENTS

        await eventually(all_delivered, within=20)
    finally:
        if child.is_alive():
            child.kill()
        await restarted.aclose()
    assert sorted(receiver.applied) == sorted(event_ids)
    # Each event really was sent twice (by the killed worker, then after the restart) under one webhook-id.
    sent = [call.headers["webhook-id"] for call in webhooks.calls]
    assert sorted(sent) == sorted(event_ids * 2)
