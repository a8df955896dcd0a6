"""Which errors mean "the database is away" (503, retry), and the retries ``Database`` makes."""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from api.db import Database, DatabaseUnavailable, is_unavailable
from tests.conftest import free_port


class Orig(Exception):
    def __init__(self, sqlstate: str | None = None) -> None:
        super().__init__("driver error")
        self.sqlstate = sqlstate


def dbapi(kind: type[sa_exc.DBAPIError], sqlstate: str | None = None,
          invalidated: bool = False) -> sa_exc.DBAPIError:
    return kind("SELECT 1", {}, Orig(sqlstate), connection_invalidated=invalidated)


@pytest.mark.parametrize(("error", "connecting", "expected"), [
    (dbapi(sa_exc.OperationalError), False, True),  # PostgreSQL gone
    (dbapi(sa_exc.InterfaceError), False, True),  # "connection is closed", "another operation"
    (dbapi(sa_exc.DBAPIError, invalidated=True), False, True),  # terminated backend
    (dbapi(sa_exc.DBAPIError, "57P01"), False, True),  # admin shutdown
    (dbapi(sa_exc.DBAPIError, "53300"), False, True),  # too many connections
    (dbapi(sa_exc.DBAPIError, "22012"), False, False),  # division by zero: a bug
    (dbapi(sa_exc.IntegrityError, "23505"), False, False),  # a duplicate: the caller's case
    (dbapi(sa_exc.ProgrammingError, "42P01"), False, False),  # missing table: a bug
    (sa_exc.TimeoutError("QueuePool limit reached"), False, True),
    (TimeoutError(), False, True),  # asyncpg's connect and statement timeouts
    (asyncpg.exceptions.CannotConnectNowError("starting up"), True, True),
    (asyncpg.exceptions.ConnectionDoesNotExistError("gone"), True, True),
    (ConnectionRefusedError(111, "refused"), True, True),
    (ConnectionRefusedError(111, "refused"), False, False),  # inside a handler: not ours
    (ValueError("no"), True, False),
    (sa_exc.OperationalError("BEGIN", {}, sqlite3.OperationalError("database is locked")),
     False, True),
    (sa_exc.OperationalError("X", {}, sqlite3.OperationalError("near \"X\": syntax error")),
     False, False),  # SQLite calls a bad query an OperationalError too: a bug, a 500
    (sa_exc.OperationalError("X", {}, sqlite3.OperationalError("no such table: x")),
     False, False),
    (DatabaseUnavailable("already judged"), False, False),
])
def test_classification(error: BaseException, connecting: bool, expected: bool) -> None:
    assert is_unavailable(error, connecting=connecting) is expected


async def test_connecting_is_tried_twice_then_unavailable() -> None:
    db = Database(f"postgresql://postgres@127.0.0.1:{free_port()}/none", timeout=2)
    try:
        with pytest.raises(DatabaseUnavailable) as failed:
            async with db.read():
                pass
        assert failed.value.at_connect and not failed.value.outcome_unknown
    finally:
        await db.close()


async def test_fetch_tries_a_read_once_more_after_a_broken_connection(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    calls = 0

    async def read(conn: object) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise dbapi(sa_exc.InterfaceError)
        assert isinstance(conn, sa.ext.asyncio.AsyncConnection)
        return int((await conn.execute(sa.text("SELECT 41 + 1"))).scalar_one())

    try:
        assert await db.fetch(read) == 42 and calls == 2
    finally:
        await db.close()


async def test_other_errors_pass_through_unchanged(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        with pytest.raises(KeyError):
            async with db.write():
                raise KeyError("the caller's own")
        with pytest.raises(sa_exc.OperationalError):  # a bad query: a bug, not an outage
            async with db.read() as conn:
                await conn.execute(sa.text("SELEKT"))
    finally:
        await db.close()
