"""Which database errors mean "the database is away" (answer 503, retry later), not a bug.

PostgreSQL restarting, a network cut, a terminated backend, a full pool or SQLite's lock
timeout all surface as different exceptions, from three layers:

- SQLAlchemy: ``OperationalError`` (on SQLite only the lock, busy, I/O and full-disk ones:
  SQLite reports a syntax error or a missing table as an OperationalError too, and those are
  bugs, to stay 500s), ``InterfaceError`` ("connection is closed", asyncpg's
  "another operation is in progress"), any ``DBAPIError`` it marked
  ``connection_invalidated``, a pool ``TimeoutError``, ``DisconnectionError``; and a
  PostgreSQL error whose SQLSTATE class says so (08 connection exception, 53 insufficient
  resources, 57 operator intervention: admin shutdown, "cannot connect now");
- asyncpg, raw, when connecting: its connection, interface and operator-intervention errors;
- the OS, raw, when connecting (refused, reset, unreachable) and asyncpg's own timeouts
  (``TimeoutError``, connect and statement).

A raw ``OSError`` counts only while connecting: inside a transaction only the database's own
exception types are judged, so an unrelated I/O error in a handler is not mistaken for one.
"""

from __future__ import annotations

import sqlite3

import asyncpg
from sqlalchemy import exc as sa_exc

_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57")
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "database is busy",
                     "disk i/o error", "unable to open database file", "database or disk is full")
_ASYNCPG_TRANSIENT = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached or lost the connection; the API answers 503.

    ``at_connect``: no statement was sent (so any operation may safely be tried again).
    ``outcome_unknown``: the connection broke while committing, so the transaction may or may
    not have been committed; the caller must not undo side effects that depend on it.
    """

    def __init__(self, message: str, *, at_connect: bool = False,
                 outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.at_connect = at_connect
        self.outcome_unknown = outcome_unknown


def is_unavailable(error: BaseException, *, connecting: bool = False) -> bool:
    """True if ``error`` means the database is (for now) unreachable or lost the connection."""
    if isinstance(error, DatabaseUnavailable):
        return False  # already judged
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        if isinstance(error, sa_exc.OperationalError) and isinstance(error.orig, sqlite3.Error):
            return any(text in str(error.orig).lower() for text in _SQLITE_TRANSIENT)
        if isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError)):
            return True
        sqlstate = str(getattr(error.orig, "sqlstate", None) or "")
        return sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES
    if isinstance(error, (sa_exc.TimeoutError, sa_exc.DisconnectionError)):
        return True  # the pool had no connection within its timeout
    if isinstance(error, (*_ASYNCPG_TRANSIENT, TimeoutError)):
        return True
    return connecting and isinstance(error, OSError)


def describe(error: BaseException) -> str:
    """A one-line reason for logs (no traceback: an outage is not a bug)."""
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
