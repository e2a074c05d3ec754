"""What every benchmark script shares: progress lines on stderr, percentiles, waiting for a server, and a
migrated database to run against."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from cortex.db.admin import create_database
from cortex.db.embedded import EmbeddedPostgres
from cortex.db.migrate import upgrade


def open_database(workdir: Path) -> tuple[str, EmbeddedPostgres | None]:
    """DATABASE_URL, else a fresh `cortex_bench` database on an embedded PostgreSQL in `workdir` (returned,
    for the caller to stop); migrated either way."""
    embedded = None
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        embedded = EmbeddedPostgres(workdir / "data")
        database_url = asyncio.run(create_database(embedded.start(), "cortex_bench"))
    upgrade(database_url)
    return database_url, embedded


def log(message: str) -> None:
    """Progress on stderr: stdout carries only the benchmark's JSON."""
    print(message, file=sys.stderr, flush=True)


def percentile(values: Sequence[float], pct: float, digits: int = 3) -> float:
    """Nearest-rank percentile (no interpolation), rounded for the JSON."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return round(ordered[index], digits)


def wait_for(url: str, seconds: float = 180) -> None:
    """Until `url` answers without a server error (a server or proxy this benchmark started)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")
