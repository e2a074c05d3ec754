"""The procrastinate App of one running service, and the worker that runs its jobs.

One App per runtime, on the service's own database (embedded or DATABASE_URL) through procrastinate's
psycopg connector. Each domain registers its tasks with a `TaskRegistrar` (app.wire_components lists them);
jobs are deferred with `cortex.jobs.defer.defer_in` inside the transaction of the change that causes them.

A worker runs inside `cortex serve` unless CORTEX_JOBS_IN_SERVE=false, or alone under `cortex worker`.
Stopping it lets running jobs finish for CORTEX_JOBS_SHUTDOWN_GRACE_SECONDS, then aborts them, and
every task's retry strategy queues an aborted job again: nothing a worker held is lost. A worker that
died (kill -9, lost host) stops updating its heartbeat; any live worker hands its jobs back to the queue
once the heartbeat is CORTEX_JOBS_STALLED_AFTER_SECONDS old, so every task must be safe to run twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

import procrastinate
import psycopg_pool
from procrastinate.app import WorkerOptions
from sqlalchemy.engine import make_url

from cortex.kit.runtime import Runtime

logger = logging.getLogger(__name__)

JOBS = "jobs"  # the component's name in Runtime.components

TaskRegistrar = Callable[[procrastinate.App], None]
WORKER_RESTART_MAX_SECONDS = 30.0


def psycopg_conninfo(url: str) -> str:
    """The service's database URL (any SQLAlchemy driver suffix) as the libpq URL psycopg takes."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def retry_on_crash(max_attempts: int = 10) -> procrastinate.RetryStrategy:
    """For unexpected errors and jobs handed back at shutdown: 2, 4, 8 ... seconds, then give up."""
    return procrastinate.RetryStrategy(max_attempts=max_attempts, exponential_wait=2)


def runtime_of(context: procrastinate.JobContext) -> Runtime:
    """The runtime the worker was started with (tasks take `pass_context=True`)."""
    runtime: Runtime = context.additional_context["runtime"]
    return runtime


def _pool_without_check(**options: Any) -> psycopg_pool.AsyncConnectionPool:
    """procrastinate's pool, without its check of every connection taken out of it: that check is a round
    trip before each fetch and each finish, a quarter of a webhook delivery's time (bench/webhooks.py).
    A connection lost to a database restart fails one query; the pool drops it and the worker restarts."""
    options["check"] = None
    return psycopg_pool.AsyncConnectionPool(**options)


class JobSystem:
    def __init__(self, runtime: Runtime, registrars: Sequence[TaskRegistrar],
                 queues: Sequence[str] | None = None) -> None:
        """`queues`: the queues this system's workers take jobs from; None for all."""
        self.runtime = runtime
        self.queues = list(queues) if queues is not None else None
        settings = runtime.settings
        connector = procrastinate.PsycopgConnector(
            conninfo=psycopg_conninfo(runtime.database.resolve_url()),
            min_size=1, max_size=settings.jobs_concurrency + 2, pool_factory=_pool_without_check,
        )
        self.app = procrastinate.App(connector=connector)
        for register in registrars:
            register(self.app)
        self._opened = False
        self._worker: asyncio.Task[None] | None = None

    async def open(self) -> procrastinate.App:
        if not self._opened:
            await self.app.open_async()
            self._opened = True
        return self.app

    def serve(self) -> None:
        """Run a worker in the background of this event loop (inside `cortex serve`); `aclose` stops it."""
        if self._worker is None:
            self._worker = asyncio.create_task(self._serve_until_cancelled(), name="job worker")

    async def _serve_until_cancelled(self) -> None:
        """A worker that stops on an error (the database unreachable, a lost connection) starts again."""
        wait = 1.0
        while True:
            try:
                await self.run_worker(install_signal_handlers=False)
                return
            except Exception:
                logger.exception("the job worker stopped on an error; starting it again in %.0f s", wait)
            await asyncio.sleep(wait)
            wait = min(wait * 2, WORKER_RESTART_MAX_SECONDS)

    @property
    def serving(self) -> bool:
        return self._worker is not None and not self._worker.done()

    async def run_worker(self, *, install_signal_handlers: bool = True) -> None:
        """Run jobs until cancelled (or, with signal handlers, until SIGINT/SIGTERM), then shut down gracefully."""
        settings = self.runtime.settings
        app = await self.open()
        recovery = asyncio.create_task(self._hand_back_stalled_jobs(), name="stalled job recovery")
        try:
            options: WorkerOptions = {
                "name": f"cortex-{socket.gethostname()}-{os.getpid()}",
                "concurrency": settings.jobs_concurrency,
                "install_signal_handlers": install_signal_handlers,
                "shutdown_graceful_timeout": settings.jobs_shutdown_grace_seconds,
                "update_heartbeat_interval": settings.jobs_heartbeat_seconds,
                "stalled_worker_timeout": settings.jobs_stalled_after_seconds,
                "fetch_job_polling_interval": settings.jobs_poll_seconds,
                "additional_context": {"runtime": self.runtime},
            }
            if self.queues is not None:
                options["queues"] = self.queues
            await app.run_worker_async(**options)
        finally:
            recovery.cancel()
            with suppress(asyncio.CancelledError):
                await recovery

    async def _hand_back_stalled_jobs(self) -> None:
        """Queue again the jobs of workers whose heartbeat stopped (procrastinate leaves them 'doing')."""
        settings = self.runtime.settings
        manager = self.app.job_manager
        while True:
            try:
                stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=settings.jobs_stalled_after_seconds)
                for job in stalled:
                    try:
                        await manager.retry_job(job)
                        logger.warning("job %s (%s) of a stalled worker queued again", job.id, job.task_name)
                    except Exception:  # another worker handed it back first
                        logger.debug("stalled job %s already handed back", job.id, exc_info=True)
            except Exception:
                logger.exception("could not look for stalled jobs")
            await asyncio.sleep(max(settings.jobs_stalled_after_seconds / 3, 0.2))

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._opened:
            await self.app.close_async()
            self._opened = False


def job_system(runtime: Runtime) -> JobSystem:
    component = runtime.components.get(JOBS)
    if not isinstance(component, JobSystem):
        raise RuntimeError("the job system is not wired (cortex.app.wire_components)")
    return component
