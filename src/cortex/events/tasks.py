"""The events domain's jobs: webhook deliveries, and the periodic pruning of old events and finished jobs."""

from __future__ import annotations

import logging
import uuid

import procrastinate

from cortex.events import delivery, repository
from cortex.events.outbox import DELIVER_TASK, WEBHOOK_QUEUE
from cortex.jobs.system import retry_on_crash, runtime_of

logger = logging.getLogger(__name__)

PRUNE_TASK = "events.prune"
MAINTENANCE_QUEUE = "maintenance"
# Finished procrastinate jobs are kept this long for inspection, then deleted with the old events.
FINISHED_JOBS_HOURS = 72


async def deliver_webhook(context: procrastinate.JobContext, delivery_id: str, token: str) -> None:
    await delivery.deliver(runtime_of(context), uuid.UUID(delivery_id), uuid.UUID(token))


async def prune(context: procrastinate.JobContext, timestamp: int) -> None:
    runtime = runtime_of(context)
    async with runtime.database.session() as session:
        deleted = await repository.prune(session, runtime.settings.events_retention_days)
    await context.app.job_manager.delete_old_jobs(nb_hours=FINISHED_JOBS_HOURS, include_failed=True,
                                                  include_cancelled=True, include_aborted=True)
    if deleted:
        logger.info("deleted %d events older than %d days", deleted, runtime.settings.events_retention_days)


def register(app: procrastinate.App) -> None:
    app.task(name=DELIVER_TASK, queue=WEBHOOK_QUEUE, pass_context=True, retry=retry_on_crash())(deliver_webhook)
    app.periodic(cron="*/10 * * * *", periodic_id="events")(
        app.task(name=PRUNE_TASK, queue=MAINTENANCE_QUEUE, pass_context=True, queueing_lock=PRUNE_TASK)(prune))
