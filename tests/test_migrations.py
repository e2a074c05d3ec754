"""Migrations against a fresh database on the real server: processes that start together migrate once."""

from __future__ import annotations

import subprocess
import sys

from tests.scratch_db import run_sql, scratch_database


def test_workers_migrating_one_fresh_database_at_once_all_succeed(pg_server_url: str) -> None:
    with scratch_database(pg_server_url, "cortex_race") as url:
        # Four `uvicorn --workers 4` processes at start-up, or four replicas of a deploy (processes:
        # Alembic's context is process-global, so threads would not be a fair stand-in).
        command = [sys.executable, "-c", "import sys; from cortex.db.migrate import upgrade; upgrade(sys.argv[1])", url]
        workers = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(4)]
        for worker in workers:
            _, errors = worker.communicate(timeout=120)
            assert worker.returncode == 0, errors[-2000:]
        assert run_sql(url, "SELECT count(*) FROM alembic_version") == [(1,)]
        assert run_sql(url, "SELECT count(*) FROM memory_facts") == [(0,)]
