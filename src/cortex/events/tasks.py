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


DELIVERY_RETRY = retry_on_crash()


async def deliver_webhook(context: procrastinate.JobContext, delivery_id: str, token: str) -> None:
    runtime = runtime_of(context)
    try:
        await delivery.deliver(runtime, uuid.UUID(delivery_id), uuid.UUID(token))
    except Exception as exc:
        # What the job system will do with this job, said truthfully on the delivery row.
        decision = DELIVERY_RETRY.get_retry_decision(exception=exc, job=context.job)
        try:
            await delivery.job_crashed(runtime, uuid.UUID(delivery_id), uuid.UUID(token), exc,
                                       decision.retry_at if decision is not None else None)
        except Exception:
            logger.exception("could not record the crash of webhook delivery %s", delivery_id)
        raise


async def prune(context: procrastinate.JobContext, timestamp: int) -> None:
    runtime = runtime_of(context)
    async with runtime.database.session() as session:
        deleted = await repository.prune(session, runtime.settings.events_retention_days)
    await context.app.job_manager.delete_old_jobs(nb_hours=FINISHED_JOBS_HOURS, include_failed=True,
                                                  include_cancelled=True, include_aborted=True)
    if deleted:
        logger.info("deleted %d events older than %d days", deleted, runtime.settings.events_retention_days)


def register(app: procrastinate.App) -> None:
    app.task(name=DELIVER_TASK, queue=WEBHOOK_QUEUE, pass_context=True, retry=DELIVERY_RETRY)(deliver_webhook)
    app.periodic(cron="*/10 * * * *", periodic_id="events")(
        app.task(name=PRUNE_TASK, queue=MAINTENANCE_QUEUE, pass_context=True, queueing_lock=PRUNE_TASK)(prune))
