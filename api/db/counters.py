"""Atomic counters: rate-limit windows, monthly uploads per team, stored bytes per team.

Every increment is ONE conditional statement (``INSERT .. ON CONFLICT DO UPDATE .. WHERE``
or ``UPDATE .. WHERE count < limit``) that returns the new value or nothing. The database
decides under its row lock, so two processes or nodes racing for the last unit can never
both get it; nothing is read first and written later.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from api.db.engine import upsert
from api.db.schema import rate_counters, teams, usage_months


async def hit_window(conn: AsyncConnection, key: str, limit: int, expires_at: int) -> int | None:
    """Count one hit in a fixed window; the new count, or None when the limit was reached."""
    statement = upsert(conn, rate_counters).values(key=key, count=1, expires_at=expires_at)
    statement = statement.on_conflict_do_update(
        index_elements=["key"],
        set_={"count": rate_counters.c.count + 1},
        where=rate_counters.c.count < limit,
    ).returning(rate_counters.c.count)
    return (await conn.execute(statement)).scalar_one_or_none()


async def window_count(conn: AsyncConnection, key: str) -> int:
    query = sa.select(rate_counters.c.count).where(rate_counters.c.key == key)
    return (await conn.execute(query)).scalar_one_or_none() or 0


async def drop_expired_windows(conn: AsyncConnection, now: int) -> int:
    result = await conn.execute(sa.delete(rate_counters).where(rate_counters.c.expires_at <= now))
    return result.rowcount or 0


async def take_monthly_upload(conn: AsyncConnection, team_id: int, month: str, limit: int) -> bool:
    statement = upsert(conn, usage_months).values(team_id=team_id, month=month, uploads=1)
    statement = statement.on_conflict_do_update(
        index_elements=["team_id", "month"],
        set_={"uploads": usage_months.c.uploads + 1},
        where=usage_months.c.uploads < limit,
    ).returning(usage_months.c.uploads)
    return (await conn.execute(statement)).scalar_one_or_none() is not None


async def take_storage(conn: AsyncConnection, team_id: int, size: int, limit: int | None) -> bool:
    """Add ``size`` bytes to the team's storage unless that passes ``limit`` (None: no limit)."""
    statement = sa.update(teams).where(teams.c.id == team_id)
    if limit is not None:
        statement = statement.where(teams.c.storage_bytes + size <= limit)
    result = await conn.execute(
        statement.values(storage_bytes=teams.c.storage_bytes + size).returning(teams.c.id)
    )
    return result.scalar_one_or_none() is not None


async def free_storage(conn: AsyncConnection, team_id: int, size: int) -> None:
    await conn.execute(
        sa.update(teams).where(teams.c.id == team_id)
        .values(storage_bytes=sa.func.max(teams.c.storage_bytes - size, 0)
                if conn.dialect.name == "sqlite"
                else sa.func.greatest(teams.c.storage_bytes - size, 0))
    )


async def team_usage(conn: AsyncConnection, team_id: int, month: str) -> tuple[int, int]:
    """(uploads this month, stored bytes) of a team."""
    uploads = (await conn.execute(
        sa.select(usage_months.c.uploads)
        .where(usage_months.c.team_id == team_id, usage_months.c.month == month)
    )).scalar_one_or_none() or 0
    stored = (await conn.execute(
        sa.select(teams.c.storage_bytes).where(teams.c.id == team_id)
    )).scalar_one_or_none() or 0
    return int(uploads), int(stored)
