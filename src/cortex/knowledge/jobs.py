"""Background ingestion jobs: run in the worker that accepted them, recorded in PostgreSQL so that any
worker (and `GET /v1/jobs/{job_id}`) can report status, progress, counts and error."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from cortex.db.models import KnowledgeJob
from cortex.kit.errors import NotFound
from cortex.kit.runtime import Runtime
from cortex.knowledge.ingestion import IngestOutcome, Progress, ProgressCallback
from cortex.knowledge.schemas import JobPublic

logger = logging.getLogger(__name__)

Work = Callable[[ProgressCallback], Awaitable[IngestOutcome | None]]
# Progress writes are throttled: one UPDATE per this many seconds at most (plus the final one).
_PROGRESS_INTERVAL_S = 0.5


def percent(progress: Progress) -> int:
    """Chunking is quick; embedding and writing take the time, so they own most of the bar."""
    if progress.stage == "done":
        return 100
    if progress.stage == "chunking":
        return 5
    return min(99, 5 + int(90 * progress.done / max(progress.total, 1)))


def to_public(job: KnowledgeJob) -> JobPublic:
    return JobPublic(job_id=job.id, kind=job.kind, status=job.status,
                     progress=job.progress, source_id=job.source_id, agent_id=job.agent_id,
                     documents_processed=job.documents_processed, chunks_created=job.chunks_created,
                     chunks_embedded=job.chunks_embedded, error=job.error, created_at=job.created_at,
                     updated_at=job.updated_at, finished_at=job.finished_at)


async def get_job(runtime: Runtime, company_id: uuid.UUID, job_id: uuid.UUID) -> JobPublic:
    async with runtime.database.session() as session:
        job = await session.scalar(select(KnowledgeJob).where(KnowledgeJob.id == job_id,
                                                              KnowledgeJob.company_id == company_id))
        if job is None:
            raise NotFound("job not found")
        return to_public(job)


async def create_job(runtime: Runtime, *, company_id: uuid.UUID, kind: str, source_id: uuid.UUID | None = None,
                     agent_id: uuid.UUID | None = None, created_by: str | None = None,
                     params: dict[str, Any] | None = None) -> KnowledgeJob:
    # Committed at once, before any task touches it, in its own unit of work.
    async with runtime.database.session() as session:
        job = KnowledgeJob(company_id=company_id, kind=kind, source_id=source_id, agent_id=agent_id,
                           status="queued", progress=0, documents_processed=0, chunks_created=0,
                           chunks_embedded=0, created_by=created_by, params=params or {})
        session.add(job)
        await session.flush()
        await session.refresh(job)
        return job


async def _update(runtime: Runtime, job_id: uuid.UUID, **values: Any) -> None:
    async with runtime.database.session() as session:
        await session.execute(update(KnowledgeJob).where(KnowledgeJob.id == job_id).values(**values))


async def run_job(runtime: Runtime, job_id: uuid.UUID, work: Work,
                  on_progress: Callable[[Progress], None] | None = None) -> IngestOutcome | None:
    """Run `work`, recording its course on the job row; failures are recorded, not raised."""
    await _update(runtime, job_id, status="running", progress=1)
    last_write = 0.0

    async def progress(step: Progress) -> None:
        nonlocal last_write
        if on_progress is not None:
            on_progress(step)
        now = time.monotonic()
        if step.stage == "done" or now - last_write >= _PROGRESS_INTERVAL_S:
            last_write = now
            embedded = step.done if step.stage in ("embedding", "done") else 0
            await _update(runtime, job_id, progress=percent(step), chunks_embedded=embedded)

    try:
        outcome = await work(progress)
    except asyncio.CancelledError:
        await asyncio.shield(_update(runtime, job_id, status="failed", error="cancelled: the worker shut down",
                                     finished_at=datetime.now(UTC)))
        raise
    except Exception as exc:  # the job records every failure; nothing else would see it
        logger.warning("knowledge job failed", extra={"job_id": str(job_id), "error": type(exc).__name__})
        await _update(runtime, job_id, status="failed", error=str(exc) or type(exc).__name__,
                      finished_at=datetime.now(UTC))
        return None
    counts: dict[str, Any] = {}
    if outcome is not None:
        counts = {"documents_processed": outcome.documents_processed, "chunks_created": outcome.chunks_created,
                  "chunks_embedded": outcome.chunks_embedded}
    await _update(runtime, job_id, status="completed", progress=100, finished_at=datetime.now(UTC), **counts)
    return outcome


class JobRunner:
    """Holds the worker's running jobs so that they are not garbage-collected and finish on shutdown."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, job_id: uuid.UUID, work: Work) -> asyncio.Task[Any]:
        task = asyncio.create_task(run_job(self.runtime, job_id, work), name=f"knowledge-job-{job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
