"""Deferring a job inside the caller's transaction: it exists if and only if the change that caused it commits.

procrastinate defers on a connection of its own connector (psycopg); the service's units of work run on
SQLAlchemy over asyncpg, so the job is inserted here with the same SQL function procrastinate's own
`defer` calls (`procrastinate_defer_jobs_v1`, in the schema migration 0012 froze). Its insert trigger
wakes the workers when the transaction commits; a rollback leaves no job behind.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

DEFAULT_QUEUE = "default"

_DEFER = text(
    "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW("
    "CAST(:queue AS varchar), CAST(:task AS varchar), CAST(:priority AS integer), CAST(:lock AS text), "
    "CAST(:queueing_lock AS text), CAST(:args AS jsonb), CAST(:scheduled_at AS timestamptz)"
    ")::procrastinate_job_to_defer_v1])) AS id"
)


async def defer_in(session: AsyncSession, task_name: str, args: dict[str, Any], *, queue: str = DEFAULT_QUEUE,
                   lock: str | None = None, queueing_lock: str | None = None,
                   scheduled_at: datetime | None = None, priority: int = 0) -> int:
    """Queue `task_name(**args)` in `session`'s transaction; returns the job id.

    `lock`: jobs sharing it never run at the same time. `queueing_lock`: at most one such job waits
    (a second raises IntegrityError, so defer it in a savepoint when that can happen).
    """
    job_id = await session.scalar(_DEFER, {
        "queue": queue, "task": task_name, "priority": priority, "lock": lock, "queueing_lock": queueing_lock,
        "args": json.dumps(args), "scheduled_at": scheduled_at,
    })
    assert job_id is not None
    return int(job_id)


_DEFER_MANY = text(
    "SELECT procrastinate_defer_jobs_v1(ARRAY(SELECT ROW(j.queue, j.task, 0, j.lock, NULL, j.args, NULL)"
    "::procrastinate_job_to_defer_v1 FROM jsonb_to_recordset(CAST(:jobs AS jsonb)) "
    "AS j(queue varchar, task varchar, lock text, args jsonb)))"
)


async def defer_many_in(session: AsyncSession, jobs: list[tuple[str, dict[str, Any], str, str | None]]) -> None:
    """Queue several jobs `(task, args, queue, lock)` in `session`'s transaction, in one round trip."""
    if not jobs:
        return
    await session.execute(_DEFER_MANY, {"jobs": json.dumps([
        {"task": task, "args": args, "queue": queue, "lock": lock} for task, args, queue, lock in jobs])})
