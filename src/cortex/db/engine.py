"""Async engine and sessions, plus the database the service runs on (given or embedded)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from cortex.db.embedded import EmbeddedPostgres
from cortex.db.url import async_url
from cortex.settings import Settings

AFTER_COMMIT = "cortex_after_commit"


def after_commit(session: AsyncSession, callback: Callable[[], Awaitable[None]]) -> None:
    """Run `callback` once the unit of work has committed (e.g. cache invalidation: doing it
    before the commit would let a concurrent reader cache the old state again)."""
    session.info.setdefault(AFTER_COMMIT, []).append(callback)


class Database:
    """Owns the engine and, when no DATABASE_URL is set, the embedded server behind it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._embedded: EmbeddedPostgres | None = None
        self.url: str | None = None
        self.engine: AsyncEngine | None = None
        self.sessionmaker: async_sessionmaker[AsyncSession] | None = None

    def resolve_url(self) -> str:
        """Start the embedded server if needed; return the plain postgresql:// URL."""
        if self.url is None:
            if self.settings.database_url:
                self.url = self.settings.database_url
            else:
                self._embedded = EmbeddedPostgres(self.settings.resolved_data_dir)
                self.url = self._embedded.start()
        return self.url

    def connect(self, pool_size: int = 10) -> AsyncEngine:
        if self.engine is None:
            # No pre-ping: it costs a round trip on every checkout, several per chat request. A connection
            # lost to a database restart fails one query, is invalidated, and the pool reconnects.
            # Bounded waits: a database that does not answer a connect, or a pool with no free connection,
            # fails the request (503) within seconds rather than holding it past the client's timeout.
            self.engine = create_async_engine(
                async_url(self.resolve_url()), pool_size=pool_size, max_overflow=20, pool_recycle=1800,
                pool_timeout=self.settings.database_pool_timeout_seconds,
                connect_args={"timeout": self.settings.database_connect_timeout_seconds},
            )
            self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        return self.engine

    @asynccontextmanager
    async def driver(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection's asyncpg connection itself, outside any transaction (no BEGIN/COMMIT), for
        the reads on every chat. An error that says the connection is gone invalidates it in the pool:
        SQLAlchemy never sees the driver's own errors, and would hand the dead connection out again."""
        async with self.connect().connect() as connection:
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None  # a checked-out connection always has its asyncpg connection
            try:
                yield driver
            except (asyncpg.InterfaceError, asyncpg.PostgresConnectionError, OSError):
                await connection.invalidate()
                raise

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: commits on success, rolls back on error."""
        if self.sessionmaker is None:
            self.connect()
        assert self.sessionmaker is not None
        async with self.sessionmaker() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
            for callback in session.info.pop(AFTER_COMMIT, []):
                await callback()

    async def dispose(self) -> None:
        if self.engine is not None:
            await self.engine.dispose()
            self.engine = None
            self.sessionmaker = None

    def stop_embedded(self) -> None:
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None
