"""Many media rows for one team, made by the database itself (one INSERT .. SELECT over a
generated series), so that a test can pass the limits a statement or a driver has (32,767
asyncpg arguments, 65,535 PostgreSQL parameters, SQLite's 32,766 variables) in seconds.

The rows are what an upload makes, without originals in the store (removing a missing
original is a no-op for every store), and the counters are recounted afterwards exactly as
a bulk load would (``api.db.counters.recount_team``).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from api.db import Database
from api.db.counters import recount_team

_SERIES = {
    "postgresql": "SELECT g AS n FROM generate_series(1, :count) AS g",
    "sqlite": "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < :count) "
              "SELECT n FROM s",
}
_ID = {
    "postgresql": ":prefix || lpad(n::text, 9, '0')",
    "sqlite": ":prefix || substr('000000000' || n, -9)",
}


def team_of(database_url: str, media_id: str) -> int:
    """The team id of a media (tests find their team through an uploaded media)."""
    rows = run(database_url, "SELECT team_id FROM media WHERE id = :i", i=media_id)
    return int(rows[0][0])


def add_rows(database_url: str, team_id: int, count: int, *, namespace: str | None,
             tags: Sequence[str] = (), filesize: int = 1000, sort_at: int = 1_700_000_000) -> str:
    """Insert ``count`` live media of ``team_id`` (each with ``tags``), newest-first order by
    their number; returns the 3-letter prefix of their ids."""
    prefix = secrets.choice("ABCDEFGHJK") + secrets.token_hex(1)

    async def insert() -> None:
        db = Database(database_url)
        try:
            async with db.write() as conn:
                dialect = conn.dialect.name
                await conn.execute(sa.text(
                    "INSERT INTO media (id, team_id, account_id, name, extension, width, height,"
                    " filesize, namespace, public, external_id, meta, date, sort_at, created_at,"
                    " expires_at, retain_until, deleted_at, original_removed) "
                    f"SELECT {_ID[dialect]}, :team, NULL, 'bulk.png', 'png', 8, 6, :size, :ns,"
                    " true, NULL, '{}', NULL, :sort_at + n, :sort_at, NULL, NULL, NULL, false"
                    f" FROM ({_SERIES[dialect]}) AS series"
                ), {"prefix": prefix, "team": team_id, "size": filesize, "ns": namespace,
                    "sort_at": sort_at, "count": count})
                for position, tag in enumerate(tags):
                    await conn.execute(sa.text(
                        "INSERT INTO media_tags (media_seq, tag, position, team_id, sort_at) "
                        "SELECT seq, :tag, :position, :team, sort_at FROM media "
                        "WHERE team_id = :team AND id LIKE :pattern"
                    ), {"tag": tag, "position": position, "team": team_id,
                        "pattern": prefix + "%"})
                await recount_team(conn, team_id)
                if dialect == "postgresql":
                    await conn.execute(sa.text("ANALYZE media"))
                    await conn.execute(sa.text("ANALYZE media_tags"))
        finally:
            await db.close()

    asyncio.run(insert())
    return prefix


def run(database_url: str, statement: str, **params: Any) -> list[Any]:
    """One statement in a write transaction of its own; the rows it returned."""

    async def go() -> list[Any]:
        db = Database(database_url)
        try:
            async with db.write() as conn:
                result = await conn.execute(sa.text(statement), params)
                return list(result.all()) if result.returns_rows else []
        finally:
            await db.close()

    return asyncio.run(go())


def recount(database_url: str, team_id: int) -> tuple[dict[str, tuple[int, int]], int]:
    """A full recount of a team from its rows: ({namespace: (count, bytes)}, stored bytes)."""
    rows = run(database_url,
               "SELECT namespace, count(*), coalesce(sum(filesize), 0) FROM media "
               "WHERE team_id = :t AND deleted_at IS NULL AND namespace IS NOT NULL "
               "GROUP BY namespace", t=team_id)
    stored = run(database_url, "SELECT coalesce(sum(filesize), 0) FROM media "
                 "WHERE team_id = :t AND deleted_at IS NULL", t=team_id)
    return {str(ns): (int(n), int(size)) for ns, n, size in rows}, int(stored[0][0])
