"""The durable job system on the test database: deferring in a transaction, running, handing back at shutdown."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import procrastinate
import pytest
from sqlalchemy import text

import cortex.db.migrations
from cortex.jobs.defer import defer_in
from cortex.jobs.system import JobSystem, psycopg_conninfo
from cortex.kit.runtime import Runtime

RAN: dict[str, list[str]] = {}
STARTED: dict[str, asyncio.Event] = {}


def register_probe(app: procrastinate.App) -> None:
    @app.task(name="tests.probe", queue="tests-probe", retry=procrastinate.RetryStrategy(max_attempts=3))
    async def probe(run: str, value: str) -> None:
        RAN.setdefault(run, []).append(value)

    @app.task(name="tests.slow", queue="tests-probe", retry=procrastinate.RetryStrategy(max_attempts=3))
    async def slow(run: str) -> None:
        STARTED[run].set()
        await asyncio.sleep(30)


@pytest.fixture
async def probe_jobs(runtime: Runtime) -> AsyncIterator[JobSystem]:
    saved = (runtime.settings.jobs_poll_seconds, runtime.settings.jobs_shutdown_grace_seconds)
    runtime.settings.jobs_poll_seconds, runtime.settings.jobs_shutdown_grace_seconds = 0.2, 0.2
    jobs = JobSystem(runtime, [register_probe], queues=["tests-probe"])
    try:
        yield jobs
    finally:
        await jobs.aclose()
        runtime.settings.jobs_poll_seconds, runtime.settings.jobs_shutdown_grace_seconds = saved


async def _status(runtime: Runtime, job_id: int) -> str:
    async with runtime.database.session() as session:
        return str(await session.scalar(text("SELECT status FROM procrastinate_jobs WHERE id = :id"), {"id": job_id}))


def test_the_frozen_schema_is_the_pinned_procrastinate_release() -> None:
    frozen = Path(cortex.db.migrations.__path__[0]) / "sql" / "procrastinate-3.10.0.sql"
    shipped = (resources.files("procrastinate.sql") / "schema.sql").read_text(encoding="utf-8")
    assert procrastinate.__version__ == "3.10.0", "a new procrastinate needs a migration applying its upgrade SQL"
    assert frozen.read_text(encoding="utf-8") == shipped


def test_the_connector_gets_a_libpq_url() -> None:
    assert psycopg_conninfo("postgresql+asyncpg://u:p%40ss@h:5/db") == "postgresql://u:p%40ss@h:5/db"


async def test_a_job_exists_only_if_its_transaction_commits(runtime: Runtime, probe_jobs: JobSystem) -> None:
    run = uuid.uuid4().hex

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with runtime.database.session() as session:
            await defer_in(session, "tests.probe", {"run": run, "value": "rolled back"}, queue="tests-probe")
            raise Boom
    async with runtime.database.session() as session:
        job_id = await defer_in(session, "tests.probe", {"run": run, "value": "committed"}, queue="tests-probe")
    probe_jobs.serve()
    for _ in range(200):
        if await _status(runtime, job_id) == "succeeded":
            break
        await asyncio.sleep(0.05)
    assert RAN[run] == ["committed"]


async def test_shutdown_hands_a_running_job_back_to_the_queue(runtime: Runtime, probe_jobs: JobSystem) -> None:
    run = uuid.uuid4().hex
    STARTED[run] = asyncio.Event()
    async with runtime.database.session() as session:
        job_id = await defer_in(session, "tests.slow", {"run": run}, queue="tests-probe")
    probe_jobs.serve()
    await asyncio.wait_for(STARTED[run].wait(), timeout=10)
    await probe_jobs.aclose()  # the grace (0.2 s) runs out: the job is aborted and queued again
    assert await _status(runtime, job_id) == "todo"
    async with runtime.database.session() as session:
        attempts = await session.scalar(text("SELECT attempts FROM procrastinate_jobs WHERE id = :id"),
                                        {"id": job_id})
        # Not left for another worker to trip over.
        await session.execute(text("DELETE FROM procrastinate_jobs WHERE id = :id"), {"id": job_id})
    assert attempts == 1
