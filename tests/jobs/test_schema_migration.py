"""Migration 0012 on a database of its own: up, down to nothing of it left, and up again."""

from __future__ import annotations

import subprocess
import sys

from tests.scratch_db import run_sql, scratch_database

OURS = ("SELECT count(*) FROM pg_class WHERE relname LIKE 'procrastinate%' "
        "OR relname IN ('events', 'webhook_endpoints', 'webhook_deliveries', 'webhook_attempts')")
FUNCTIONS = "SELECT count(*) FROM pg_proc WHERE proname LIKE 'procrastinate%' OR proname = 'cortex_notify_event'"


def _alembic(url: str, verb: str, revision: str) -> None:
    # A process of its own: Alembic's context is process-global and runs its own event loop.
    code = ("import sys; from alembic import command; from cortex.db.migrate import alembic_config; "
            f"command.{verb}(alembic_config(sys.argv[1]), sys.argv[2])")
    done = subprocess.run([sys.executable, "-c", code, url, revision], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_migration_goes_down_cleanly_and_up_again(pg_server_url: str) -> None:
    with scratch_database(pg_server_url, "cortex_events_migration") as url:
        _alembic(url, "upgrade", "0012_events_webhooks")
        assert run_sql(url, FUNCTIONS)[0][0] > 10
        _alembic(url, "downgrade", "0010_portal_sessions")
        assert run_sql(url, OURS) == [(0,)] and run_sql(url, FUNCTIONS) == [(0,)]
        _alembic(url, "upgrade", "0012_events_webhooks")
        assert run_sql(url, "SELECT count(*) FROM procrastinate_jobs") == [(0,)]
