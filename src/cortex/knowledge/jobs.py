"""Background ingestion jobs: run in the worker that accepted them, recorded in PostgreSQL so that any
worker (and `GET /v1/jobs/{job_id}`) can report status, progress, counts and error. A serving worker
holds a lease on each job it runs; a job whose worker died is claimed and run again by another."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.db.models import KnowledgeDocument, KnowledgeJob
from cortex.kit.errors import CortexError, NotFound
from cortex.kit.pagination import Listing, Page, PageParams, paginate
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


def _document_id(params: dict[str, Any] | None) -> uuid.UUID | None:
    recorded = (params or {}).get("document_id")
    try:
        return uuid.UUID(str(recorded)) if recorded else None
    except ValueError:
        return None


def to_public(job: KnowledgeJob) -> JobPublic:
    return JobPublic(job_id=job.id, kind=job.kind, status=job.status,
                     progress=job.progress, source_id=job.source_id, agent_id=job.agent_id,
                     documents_processed=job.documents_processed, chunks_created=job.chunks_created,
                     chunks_embedded=job.chunks_embedded, error=job.error, created_at=job.created_at,
                     updated_at=job.updated_at, finished_at=job.finished_at, document_id=_document_id(job.params))


async def get_job(runtime: Runtime, company_id: uuid.UUID, job_id: uuid.UUID) -> JobPublic:
    async with runtime.database.session() as session:
        job = await session.scalar(select(KnowledgeJob).where(KnowledgeJob.id == job_id,
                                                              KnowledgeJob.company_id == company_id))
        if job is None:
            raise NotFound("job not found")
        return to_public(job)


JOB_LISTING = Listing(sort={"created_at": [KnowledgeJob.created_at], "updated_at": [KnowledgeJob.updated_at]},
                      created=KnowledgeJob.created_at, updated=KnowledgeJob.updated_at, tiebreak=[KnowledgeJob.id])


async def list_jobs(session: AsyncSession, company_id: uuid.UUID, params: PageParams, *, status: str | None = None,
                    source_id: uuid.UUID | None = None, agent_id: uuid.UUID | None = None) -> Page[JobPublic]:
    statement = select(KnowledgeJob).where(KnowledgeJob.company_id == company_id)
    if status is not None:
        statement = statement.where(KnowledgeJob.status == status)
    if source_id is not None:
        statement = statement.where(KnowledgeJob.source_id == source_id)
    if agent_id is not None:
        statement = statement.where(KnowledgeJob.agent_id == agent_id)
    return await paginate(session, statement, params, to_public, listing=JOB_LISTING)


async def create_job(runtime: Runtime, *, company_id: uuid.UUID, kind: str, source_id: uuid.UUID | None = None,
                     agent_id: uuid.UUID | None = None, created_by: str | None = None,
                     params: dict[str, Any] | None = None, owner: uuid.UUID | None = None) -> KnowledgeJob:
    # Committed at once, before any task touches it, in its own unit of work.
    async with runtime.database.session() as session:
        job = KnowledgeJob(company_id=company_id, kind=kind, source_id=source_id, agent_id=agent_id,
                           status="queued", progress=0, documents_processed=0, chunks_created=0,
                           chunks_embedded=0, created_by=created_by, params=params or {}, attempts=1,
                           lease_owner=owner)
        session.add(job)
        await session.flush()
        await session.refresh(job)
        return job


@dataclass(frozen=True)
class ClaimedJob:
    """A job another worker left unfinished, now this worker's to run again."""

    id: uuid.UUID
    company_id: uuid.UUID
    kind: str
    source_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    created_by: str | None
    params: dict[str, Any]
    attempts: int


# Rebuilds a claimed job's work from its recorded parameters; raises CortexError when it cannot run again.
Resume = Callable[[ClaimedJob], Awaitable[Work]]

# A worker touches the rows of the jobs it runs this often; a queued or running job untouched for
# LEASE_SECONDS has lost its worker (killed, out of memory, host gone) and another worker claims it.
HEARTBEAT_SECONDS = 20.0
LEASE_SECONDS = 90.0
RECOVERY_EVERY_SECONDS = 60.0
# Runs a job gets before it is failed for good: a file that kills its worker must not kill them all.
MAX_ATTEMPTS = 3

_CLAIM_SQL = text("""
UPDATE knowledge_jobs AS j
SET lease_owner = :owner, attempts = j.attempts + 1, status = 'queued', progress = 0, updated_at = now()
WHERE j.id IN (SELECT id FROM knowledge_jobs
               WHERE status IN ('queued', 'running') AND updated_at < now() - make_interval(secs => :lease)
               ORDER BY created_at LIMIT :limit FOR UPDATE SKIP LOCKED)
RETURNING j.id, j.company_id, j.kind, j.source_id, j.agent_id, j.created_by, j.params, j.attempts
""")


class JobRunner:
    """Runs this worker's jobs, keeps their leases alive, and takes over jobs whose worker died.

    Every write a worker makes to a job row is fenced by `lease_owner`: a worker that lost its lease
    (another claimed the job) stops its run and changes nothing the new owner writes."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.owner = uuid.uuid4()
        self._tasks: dict[uuid.UUID, asyncio.Task[Any]] = {}
        self._service: asyncio.Task[None] | None = None
        self._resume: Resume | None = None
        self._handing_back = False

    # --- running ------------------------------------------------------------------------------------------

    def start(self, job_id: uuid.UUID, work: Work) -> asyncio.Task[Any]:
        task = asyncio.create_task(self._run(job_id, work), name=f"knowledge-job-{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(job_id, None))
        self._ensure_loop()  # every runner keeps its leases alive, the command line's too
        return task

    async def _update(self, job_id: uuid.UUID, **values: Any) -> bool:
        async with self.runtime.database.session() as session:
            result = await session.execute(update(KnowledgeJob).where(
                KnowledgeJob.id == job_id, KnowledgeJob.lease_owner == self.owner).values(**values))
            return bool(getattr(result, "rowcount", 0))

    async def _run(self, job_id: uuid.UUID, work: Work) -> IngestOutcome | None:
        """Run `work`, recording its course on the job row; failures are recorded, not raised."""
        if not await self._update(job_id, status="running", progress=1):
            return None  # claimed by another worker before it started here
        last_write = 0.0

        async def progress(step: Progress) -> None:
            nonlocal last_write
            now = time.monotonic()
            if step.stage == "done" or now - last_write >= _PROGRESS_INTERVAL_S:
                last_write = now
                embedded = step.done if step.stage in ("embedding", "done") else 0
                await self._update(job_id, progress=percent(step), chunks_embedded=embedded)

        try:
            outcome = await work(progress)
        except asyncio.CancelledError:
            await asyncio.shield(self._cancelled(job_id))
            raise
        except Exception as exc:  # the job records every failure; nothing else would see it
            logger.warning("knowledge job failed", extra={"job_id": str(job_id), "error": type(exc).__name__})
            await self._update(job_id, status="failed", error=str(exc) or type(exc).__name__,
                               finished_at=datetime.now(UTC))
            return None
        counts: dict[str, Any] = {}
        if outcome is not None:
            counts = {"documents_processed": outcome.documents_processed, "chunks_created": outcome.chunks_created,
                      "chunks_embedded": outcome.chunks_embedded}
        await self._update(job_id, status="completed", progress=100, finished_at=datetime.now(UTC), **counts)
        return outcome

    async def _cancelled(self, job_id: uuid.UUID) -> None:
        if self._handing_back:
            # A serving worker shutting down (a deploy): the job goes back to the queue, claimable at once,
            # and the next worker to look runs it again. This run does not count as an attempt.
            await self._update(job_id, status="queued", progress=0, lease_owner=None,
                               attempts=KnowledgeJob.attempts - 1,
                               updated_at=func.now() - timedelta(seconds=LEASE_SECONDS))
        else:
            await self._fail(job_id, "cancelled: the worker shut down")

    async def _fail(self, job_id: uuid.UUID, error: str, params: dict[str, Any] | None = None) -> None:
        """Fail the job for good, and the document it was filling (whose live chunks stay)."""
        if not await self._update(job_id, status="failed", error=error, finished_at=datetime.now(UTC)):
            return
        if params is None:
            async with self.runtime.database.session() as session:
                params = await session.scalar(select(KnowledgeJob.params).where(KnowledgeJob.id == job_id))
        document_id = _document_id(params)
        if document_id is not None:
            async with self.runtime.database.session() as session:
                await session.execute(update(KnowledgeDocument).where(
                    KnowledgeDocument.id == document_id, KnowledgeDocument.status.in_(("queued", "processing")))
                    .values(status="failed", error=error, updated_at=func.now()))

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    # --- leases and recovery (serving workers only) -----------------------------------------------------

    def serve(self, resume: Resume) -> None:
        """Also take over abandoned jobs, until aclose(), which then hands this worker's unfinished jobs
        back to the queue instead of failing them (for serving workers; the command line does not)."""
        self._resume = resume
        self._handing_back = True
        self._ensure_loop()

    def _ensure_loop(self) -> None:
        if self._service is None:
            self._service = asyncio.create_task(self._leases(), name="knowledge-job-leases")

    async def _leases(self) -> None:
        last_recovery = -RECOVERY_EVERY_SECONDS
        while True:
            try:
                await self.heartbeat()
                if self._resume is not None and time.monotonic() - last_recovery >= RECOVERY_EVERY_SECONDS:
                    last_recovery = time.monotonic()
                    await self.recover()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be briefly unreachable; the next round tries again
                logger.exception("knowledge jobs: lease round failed")
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def heartbeat(self) -> None:
        """Touch the rows of this worker's running jobs; stop the runs whose lease another worker took."""
        running = list(self._tasks)
        if not running:
            return
        async with self.runtime.database.session() as session:
            kept = set(await session.scalars(
                update(KnowledgeJob).where(KnowledgeJob.id.in_(running), KnowledgeJob.lease_owner == self.owner,
                                           KnowledgeJob.status.in_(("queued", "running")))
                .values(updated_at=func.now()).returning(KnowledgeJob.id)))
        for job_id in running:
            task = self._tasks.get(job_id)
            if job_id not in kept and task is not None and not task.done():
                logger.warning("knowledge job: lease lost, stopping this run", extra={"job_id": str(job_id)})
                task.cancel()

    async def recover(self, resume: Resume | None = None, limit: int = 5) -> list[uuid.UUID]:
        """Claim jobs whose worker stopped touching them and run them again here (each document's chunk set
        is swapped in atomically, so a repeated run cannot leave half an index). Returns the claimed ids."""
        resume = resume or self._resume
        assert resume is not None, "serve() or a resume function first"
        async with self.runtime.database.session() as session:
            rows = (await session.execute(_CLAIM_SQL, {"owner": self.owner, "lease": LEASE_SECONDS,
                                                       "limit": limit})).all()
        for row in rows:
            job = ClaimedJob(row.id, row.company_id, row.kind, row.source_id, row.agent_id, row.created_by,
                             dict(row.params or {}), row.attempts)
            logger.warning("knowledge job: resuming a job whose worker stopped",
                           extra={"job_id": str(job.id), "attempt": job.attempts})
            if job.attempts > MAX_ATTEMPTS:
                await self._fail(job.id, f"stopped: the workers running it stopped {MAX_ATTEMPTS} times", job.params)
                continue
            try:
                work = await resume(job)
            except CortexError as exc:
                await self._fail(job.id, f"cannot be resumed: {exc.detail}", job.params)
                continue
            self.start(job.id, work)
        return [row.id for row in rows]

    async def aclose(self) -> None:
        if self._service is not None:
            self._service.cancel()
            await asyncio.gather(self._service, return_exceptions=True)
            self._service = None
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)
