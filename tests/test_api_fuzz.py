"""Schemathesis over every operation of a running server with seeded real ids: no 5xx and every response
matching its declared schema (bounded here;
`python -m tests.api_fuzz --max-examples 200` for the long run)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.api_fuzz import fuzz
from tests.scratch_db import run_sql


def test_no_server_error_on_any_operation(pg_server_url: str, tmp_path: Path) -> None:
    name = f"cortex_fuzz_{uuid.uuid4().hex[:8]}"
    run_sql(pg_server_url, f'CREATE DATABASE "{name}"', autocommit=True)
    database_url = make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
    try:
        summary = fuzz(database_url, max_examples=3, home=tmp_path)
    finally:
        run_sql(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', autocommit=True)
    assert summary["requests"] > 1000, summary  # every operation was reached, many times
    assert summary["server_errors"] == 0 and summary["schema_violations"] == 0, json.dumps(summary, indent=2)[:8000]
    assert not summary["failures"], json.dumps(summary, indent=2)[:8000]
