"""One async engine for SQLite (default) or PostgreSQL, read/write transactions, migrations.

The queries are the same on both backends; what differs is handled here once:
- SQLite runs in WAL mode with a busy timeout, and write transactions start with
  ``BEGIN IMMEDIATE`` so that two processes never both read, then both try to upgrade to a
  write lock (SQLite would fail one of them at once instead of waiting).
- PostgreSQL URLs are normalised to the asyncpg driver; migrations take an advisory lock so
  several processes starting together apply them exactly once.
- ``upsert`` returns the backend's INSERT that knows ``ON CONFLICT``.

When the database is away (``api.db.availability``), ``read``/``write`` raise
``DatabaseUnavailable`` instead of the driver's exception, after invalidating the connection so
the pool never hands it out again. Connecting is tried twice (nothing was sent, so that is
safe for writes too); ``fetch`` runs a read function and tries it once more if the connection
broke mid-way. A write whose connection broke during COMMIT is reported as
``outcome_unknown``: it may have been committed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from api.db.availability import DatabaseUnavailable, describe, is_unavailable

T = TypeVar("T")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK = 0x1D6A7B70  # any constant shared by every imgpro process
_IMMEDIATE = "imgpro_immediate"
RECONNECT_PAUSE = 0.25
"""Pause before the second connection attempt: long enough for a restarting server or a
failed-over address to answer, short against a client's own timeout."""
DEFAULT_TIMEOUT = 10.0
PG_SESSION_SETTINGS = {"max_parallel_workers_per_gather": "0"}


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

    def __init__(self, url: str, *, pool_size: int = 10, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = normalise_database_url(url)
        options: dict[str, Any] = {"pool_timeout": timeout}
        if self.url.startswith("postgresql"):
            # A server restart must not turn pooled connections into 500s: check on checkout.
            # Connecting and every statement are bounded too: a database that stops answering
            # (a cut network drops packets, it does not refuse them) must become a 503 in
            # seconds, not hold a request for TCP's minutes.
            # No parallel workers: every API statement is a page of at most 100 rows or a
            # bounded batch, where starting workers costs more than it saves (measured in
            # README "A million media per team").
            options.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                           connect_args={"timeout": timeout, "command_timeout": timeout,
                                         "server_settings": PG_SESSION_SETTINGS})
        self.engine: AsyncEngine = create_async_engine(self.url, **options)
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A transaction for reads (a consistent snapshot; never takes a write lock)."""
        conn = await self._connect()
        try:
            async with conn.begin():
                yield conn
        except BaseException as error:
            judged = await self._judged(conn, error, committing=False)
            if judged is error:
                raise
            raise judged from error
        finally:
            await _close(conn)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that will write: committed on success, rolled back on any exception."""
        conn = await self._connect()
        committing = False
        try:
            if self.dialect == "sqlite":
                await conn.execution_options(**{_IMMEDIATE: True})
            async with conn.begin():
                yield conn
                committing = True
        except BaseException as error:
            judged = await self._judged(conn, error, committing=committing)
            if judged is error:
                raise
            raise judged from error
        finally:
            await _close(conn)

    async def fetch(self, read: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """``read(conn)`` in a read transaction, tried once more if the connection broke
        after it was made (reads have no effect, so a second try is always safe)."""
        try:
            async with self.read() as conn:
                return await read(conn)
        except DatabaseUnavailable as unavailable:
            if unavailable.at_connect:  # connecting was tried twice already
                raise
        async with self.read() as conn:
            return await read(conn)

    async def ping(self) -> None:
        """One round trip (``SELECT 1``) on a fresh checkout: the readiness check."""
        async with self.read() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def _connect(self) -> AsyncConnection:
        try:
            return await self.engine.connect()
        except Exception as first:
            if not is_unavailable(first, connecting=True):
                raise
        await asyncio.sleep(RECONNECT_PAUSE)
        try:
            return await self.engine.connect()
        except Exception as second:
            if not is_unavailable(second, connecting=True):
                raise
            raise DatabaseUnavailable(f"cannot connect to the database: {describe(second)}",
                                      at_connect=True) from second

    async def _judged(self, conn: AsyncConnection, error: BaseException, *,
                      committing: bool) -> BaseException:
        """The exception to raise for ``error`` raised inside a transaction."""
        if isinstance(error, asyncio.CancelledError):
            # Cancelled mid-statement, the driver's connection may still be busy with it
            # (asyncpg: "another operation is in progress" for the next user): never reuse it.
            await _invalidate(conn)
            return error
        if not is_unavailable(error):
            return error
        await _invalidate(conn)
        return DatabaseUnavailable(f"lost the database connection: {describe(error)}",
                                   outcome_unknown=committing)

    async def migrate(self, revision: str = "head") -> None:
        """Apply alembic revisions up to ``revision`` (tests stop at an older one), once, even
        with several processes starting."""
        async with self.write() as conn:
            if self.dialect == "postgresql":
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": _MIGRATION_LOCK})
            await conn.run_sync(_upgrade_to, revision)

    async def close(self) -> None:
        await self.engine.dispose()


async def _invalidate(conn: AsyncConnection) -> None:
    with contextlib.suppress(Exception):
        await conn.invalidate()


async def _close(conn: AsyncConnection) -> None:
    try:
        await conn.close()
    except Exception as error:  # closing a connection that already broke: nothing to return
        if not is_unavailable(error):
            raise


def upsert(conn: AsyncConnection, table: sa.Table) -> Any:
    """``INSERT`` with ``on_conflict_do_update``/``_nothing`` for the connection's backend."""
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    return module.insert(table)


def _upgrade_to(connection: sa.Connection, revision: str) -> None:
    from alembic import command  # imported here: only start-up needs it (~0.4 s of imports)
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


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
