"""Job leases on real PostgreSQL: a job whose worker died is resumed by another, a worker that lost its
lease stops without overwriting the new owner's record, and a serving worker hands its jobs back on
shutdown."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from cortex.app import create_app
from cortex.db.models import KnowledgeChunkSet, KnowledgeJob
from cortex.kit.errors import NotFound
from cortex.kit.runtime import Runtime
from cortex.knowledge import jobs
from cortex.knowledge.ingestion import IngestOutcome, ProgressCallback
from cortex.knowledge.service import KnowledgeComponent
from cortex.settings import Settings
from tests.knowledge.documents import docx_bytes
from tests.knowledge.test_ingestion import DOCX_PARAGRAPHS, make_source, upload
from tests.support import Tenant

LONG_AGO = timedelta(minutes=10)


async def abandoned_job(runtime: Runtime, tenant: Tenant, *, kind: str = "file", source_id: str | None,
                        params: dict[str, Any], attempts: int = 1) -> uuid.UUID:
    """A job as a worker killed mid-run leaves it: running, leased to a worker that no longer beats."""
    async with runtime.database.session() as session:
        job = KnowledgeJob(company_id=tenant.company_id, kind=kind, status="running", progress=40,
                           source_id=uuid.UUID(source_id) if source_id else None, created_by="u-9", params=params,
                           attempts=attempts, lease_owner=uuid.uuid4(), documents_processed=0, chunks_created=0,
                           chunks_embedded=0)
        session.add(job)
        await session.flush()
        await session.execute(update(KnowledgeJob).where(KnowledgeJob.id == job.id)
                              .values(updated_at=datetime.now(UTC) - LONG_AGO))
        return job.id


async def job_row(runtime: Runtime, job_id: uuid.UUID) -> KnowledgeJob:
    async with runtime.database.session() as session:
        job = await session.scalar(select(KnowledgeJob).where(KnowledgeJob.id == job_id))
        assert job is not None
        return job


async def test_a_dead_workers_file_job_is_resumed_by_another(client: httpx.AsyncClient, tenant: Tenant,
                                                               runtime: Runtime) -> None:
    source = await make_source(client, tenant)
    path = f"{tenant.company_id}/" + upload(runtime, tenant, "guide.docx", docx_bytes(DOCX_PARAGRAPHS))  # as recorded
    job_id = await abandoned_job(runtime, tenant, source_id=source["id"],
                                 params={"file": "guide.docx", "model": "minilm", "path": path})
    worker = KnowledgeComponent(runtime)
    try:
        assert job_id in await worker.jobs.recover(worker.resume)
        await worker.jobs.wait_idle()
    finally:
        await worker.aclose()
    job = await job_row(runtime, job_id)
    assert (job.status, job.progress, job.attempts, job.lease_owner) == ("completed", 100, 2, worker.jobs.owner)
    assert job.chunks_created == 2 and job.error is None
    public = (await client.get(f"/v1/jobs/{job_id}", headers=tenant.headers)).json()
    assert public["status"] == "completed"
    async with runtime.database.session() as session:
        live = await session.scalar(select(KnowledgeChunkSet.chunk_count).where(
            KnowledgeChunkSet.source_id == uuid.UUID(source["id"]), KnowledgeChunkSet.status == "active"))
    assert live == 2
    # A job recorded before documents existed fills the source's document of its file name.
    documents = (await client.get(f"/v1/knowledge/sources/{source['id']}/documents", headers=tenant.headers)).json()
    assert [(d["name"], d["status"], d["chunk_count"]) for d in documents["items"]] == [("guide.docx", "ready", 2)]
    # A fresh job (its worker still beating) is nobody else's to take.
    fresh = KnowledgeComponent(runtime)
    async with runtime.database.session() as session:
        await session.execute(update(KnowledgeJob).where(KnowledgeJob.id == job_id)
                              .values(status="running", updated_at=datetime.now(UTC)))
    try:
        assert job_id not in await fresh.jobs.recover(fresh.resume)
    finally:
        await fresh.aclose()
        async with runtime.database.session() as session:
            await session.execute(update(KnowledgeJob).where(KnowledgeJob.id == job_id).values(status="completed"))


async def test_jobs_that_cannot_run_again_fail_with_the_reason(client: httpx.AsyncClient, tenant: Tenant,
                                                               other_tenant: Tenant, runtime: Runtime) -> None:
    source = await make_source(client, tenant)
    path = f"{tenant.company_id}/" + upload(runtime, tenant, "guide.docx", docx_bytes(DOCX_PARAGRAPHS))  # as recorded
    exhausted = await abandoned_job(runtime, tenant, source_id=source["id"], attempts=jobs.MAX_ATTEMPTS,
                                    params={"file": "guide.docx", "model": "minilm", "path": path})
    missing = await abandoned_job(runtime, tenant, source_id=source["id"], params={
        "file": "gone.docx", "model": "minilm", "path": f"{tenant.company_id}/nowhere/gone.docx"})
    # Recorded paths are the service's own, yet a job still reads nothing outside its company's folder.
    theirs = upload(runtime, other_tenant, "theirs.docx", docx_bytes(DOCX_PARAGRAPHS))
    elsewhere = await abandoned_job(runtime, tenant, source_id=source["id"], params={
        "file": "theirs.docx", "model": "minilm", "path": f"{other_tenant.company_id}/{theirs}"})
    from_before = await abandoned_job(runtime, tenant, source_id=source["id"],
                                      params={"file": "old.docx", "model": "minilm"})
    worker = KnowledgeComponent(runtime)
    try:
        claimed = await worker.jobs.recover(worker.resume, limit=10)
        await worker.jobs.wait_idle()
    finally:
        await worker.aclose()
    assert {exhausted, missing, elsewhere, from_before} <= set(claimed)
    errors = {job_id: (await job_row(runtime, job_id)) for job_id in (exhausted, missing, elsewhere, from_before)}
    assert all(job.status == "failed" and job.finished_at is not None for job in errors.values())
    assert errors[exhausted].error == f"stopped: the workers running it stopped {jobs.MAX_ATTEMPTS} times"
    assert errors[missing].error == "cannot be resumed: the file gone.docx is no longer there"
    assert errors[elsewhere].error == "cannot be resumed: its file lies outside the company's upload folder"
    assert (errors[from_before].error or "").startswith("cannot be resumed: a file job without")
    # The document a job was filling says so too (none is left queued or processing).
    documents = (await client.get(f"/v1/knowledge/sources/{source['id']}/documents", headers=tenant.headers)).json()
    assert {d["name"]: (d["status"], d["error"]) for d in documents["items"]} == {
        "gone.docx": ("failed", "cannot be resumed: the file gone.docx is no longer there"),
        "theirs.docx": ("failed", "cannot be resumed: its file lies outside the company's upload folder")}


async def test_a_dead_workers_job_resumes_into_its_own_document(client: httpx.AsyncClient, tenant: Tenant,
                                                                runtime: Runtime) -> None:
    source = await make_source(client, tenant)
    other = upload(runtime, tenant, "other.docx", docx_bytes(DOCX_PARAGRAPHS[:2]))
    kept = await client.post("/v1/knowledge/ingest/file", headers=tenant.headers,
                             json={"source_id": source["id"], "file_path": other, "user_id": "u-1"})
    path = upload(runtime, tenant, "guide.docx", docx_bytes(DOCX_PARAGRAPHS))
    accepted = await client.post("/v1/knowledge/ingest/file", headers=tenant.headers, json={
        "source_id": source["id"], "file_path": path, "user_id": "u-1", "async": True})
    document_id = accepted.json()["document_id"]
    await runtime.components["knowledge"].jobs.wait_idle()
    # As a worker killed mid-run leaves it: the job running under a dead lease, its document processing.
    job_id = uuid.UUID(accepted.json()["job_id"])
    async with runtime.database.session() as session:
        await session.execute(update(KnowledgeJob).where(KnowledgeJob.id == job_id).values(
            status="running", lease_owner=uuid.uuid4(), updated_at=datetime.now(UTC) - LONG_AGO))
    worker = KnowledgeComponent(runtime)
    try:
        assert job_id in await worker.jobs.recover(worker.resume)
        await worker.jobs.wait_idle()
    finally:
        await worker.aclose()
    job = (await client.get(f"/v1/jobs/{job_id}", headers=tenant.headers)).json()
    assert job["status"] == "completed" and job["document_id"] == document_id
    documents = (await client.get(f"/v1/knowledge/sources/{source['id']}/documents", headers=tenant.headers)).json()
    assert {d["id"]: d["status"] for d in documents["items"]} == {kept.json()["document_id"]: "ready",
                                                                  document_id: "ready"}


async def test_a_worker_that_lost_its_lease_stops_and_writes_nothing(tenant: Tenant, runtime: Runtime) -> None:
    release = asyncio.Event()
    started = {"first": asyncio.Event(), "second": asyncio.Event()}

    def blocking(name: str) -> jobs.Work:
        async def work(progress: ProgressCallback) -> IngestOutcome:
            started[name].set()
            await release.wait()
            return IngestOutcome(source_id=uuid.uuid4(), set_id=uuid.uuid4(), embedding_model="minilm",
                                 documents_processed=1, chunks_created=7, chunks_embedded=7)

        return work

    first, second = jobs.JobRunner(runtime), jobs.JobRunner(runtime)
    job = await jobs.create_job(runtime, company_id=tenant.company_id, kind="url", params={}, owner=first.owner)
    running = first.start(job.id, blocking("first"))
    await asyncio.wait_for(started["first"].wait(), 10)
    # The first worker stalls past its lease: the second claims the job and runs it.
    async with runtime.database.session() as session:
        await session.execute(update(KnowledgeJob).where(KnowledgeJob.id == job.id)
                              .values(updated_at=datetime.now(UTC) - LONG_AGO))

    async def resume(claimed: jobs.ClaimedJob) -> jobs.Work:
        return blocking("second")

    assert job.id in await second.recover(resume)
    await asyncio.wait_for(started["second"].wait(), 10)
    await first.heartbeat()  # finds its lease gone and stops its own run
    await asyncio.gather(running, return_exceptions=True)
    assert running.cancelled()
    row = await job_row(runtime, job.id)
    assert row.status == "running" and row.lease_owner == second.owner and row.error is None
    release.set()
    await second.wait_idle()
    row = await job_row(runtime, job.id)
    assert (row.status, row.chunks_created, row.attempts) == ("completed", 7, 2)
    await first.aclose()
    await second.aclose()


async def test_shutdown_hands_a_serving_workers_jobs_back_and_fails_a_command_lines(tenant: Tenant,
                                                                                   runtime: Runtime) -> None:
    running = asyncio.Event()

    async def forever(progress: ProgressCallback) -> IngestOutcome:
        running.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def no_resume(claimed: jobs.ClaimedJob) -> jobs.Work:
        raise NotFound("this test resumes nothing")

    outcomes = {}
    for serving in (True, False):
        runner = jobs.JobRunner(runtime)
        job = await jobs.create_job(runtime, company_id=tenant.company_id, kind="url", params={}, owner=runner.owner)
        running.clear()
        task = runner.start(job.id, forever)
        await asyncio.wait_for(running.wait(), 10)  # the row says running before the work starts
        if serving:
            runner.serve(no_resume)
        await runner.aclose()
        assert task.cancelled()
        outcomes[serving] = await job_row(runtime, job.id)
    handed_back = outcomes[True]
    # The interrupted run does not count against the job's attempts; the claim of the next run will.
    assert (handed_back.status, handed_back.lease_owner, handed_back.attempts) == ("queued", None, 0)
    assert handed_back.updated_at <= datetime.now(UTC) - timedelta(seconds=jobs.LEASE_SECONDS - 5)
    assert (outcomes[False].status, outcomes[False].error) == ("failed", "cancelled: the worker shut down")
    async with runtime.database.session() as session:  # not left for another test's recovery to claim
        await session.execute(update(KnowledgeJob).where(KnowledgeJob.id == handed_back.id).values(status="failed"))


async def test_a_starting_server_resumes_what_a_crashed_one_left(client: httpx.AsyncClient, tenant: Tenant,
                                                                 runtime: Runtime, test_settings: Settings) -> None:
    source = await make_source(client, tenant)
    path = f"{tenant.company_id}/" + upload(runtime, tenant, "guide.docx", docx_bytes(DOCX_PARAGRAPHS))  # as recorded
    job_id = await abandoned_job(runtime, tenant, source_id=source["id"],
                                 params={"file": "guide.docx", "model": "minilm", "path": path})
    app = create_app(test_settings.model_copy())
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level  # the start-up installs the service's log handler
    try:
        async with app.router.lifespan_context(app):  # the worker's own start-up, as uvicorn runs it
            for _ in range(400):
                job = await job_row(runtime, job_id)
                if job.status == "completed":
                    break
                await asyncio.sleep(0.05)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert (job.status, job.attempts, job.chunks_created) == ("completed", 2, 2)
