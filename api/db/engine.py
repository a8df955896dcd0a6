"""One async engine for SQLite (default) or PostgreSQL, read/write transactions, migrations.

The queries are the same on both backends; what differs is handled here once:
- SQLite runs in WAL mode with a busy timeout, and write transactions start with
  ``BEGIN IMMEDIATE`` so that two processes never both read, then both try to upgrade to a
  write lock (SQLite would fail one of them at once instead of waiting).
- PostgreSQL URLs are normalised to the asyncpg driver; migrations take an advisory lock so
  several processes starting together apply them exactly once.
- ``upsert`` returns the backend's INSERT that knows ``ON CONFLICT``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK = 0x1D6A7B70  # any constant shared by every imgpro process
_IMMEDIATE = "imgpro_immediate"


def normalise_database_url(url: str) -> str:
    """``postgresql://`` / ``postgres://`` -> asyncpg, ``sqlite://`` -> aiosqlite."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://"):]
    return url


class Database:
    """The metadata store's connection pool and transaction helpers."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = normalise_database_url(url)
        options: dict[str, Any] = {}
        if self.url.startswith("postgresql"):
            # A server restart must not turn pooled connections into 500s: check on checkout.
            options.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(self.url, **options)
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A transaction for reads (a consistent snapshot; never takes a write lock)."""
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that will write: committed on success, rolled back on any exception."""
        async with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                await conn.execution_options(**{_IMMEDIATE: True})
            async with conn.begin():
                yield conn

    async def migrate(self) -> None:
        """Apply alembic revisions up to head, once, even with several processes starting."""
        async with self.write() as conn:
            if self.dialect == "postgresql":
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": _MIGRATION_LOCK})
            await conn.run_sync(_upgrade_to_head)

    async def close(self) -> None:
        await self.engine.dispose()


def upsert(conn: AsyncConnection, table: sa.Table) -> Any:
    """``INSERT`` with ``on_conflict_do_update``/``_nothing`` for the connection's backend."""
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    return module.insert(table)


def _upgrade_to_head(connection: sa.Connection) -> None:
    from alembic import command  # imported here: only start-up needs it (~0.4 s of imports)
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how a transaction starts (see below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
