"""Atomic counters: rate-limit windows, monthly uploads per team, stored bytes per team,
live media and bytes per namespace.

Every increment is ONE conditional statement (``INSERT .. ON CONFLICT DO UPDATE .. WHERE``
or ``UPDATE .. WHERE count < limit``) that returns the new value or nothing. The database
decides under its row lock, so two processes or nodes racing for the last unit can never
both get it; nothing is read first and written later.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from api.db.engine import upsert
from api.db.schema import media, namespace_totals, rate_counters, teams, usage_months


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


async def add_to_namespaces(conn: AsyncConnection, team_id: int,
                            deltas: dict[str, tuple[int, int]]) -> None:
    """Add (count, bytes) deltas to the team's namespace counters, one upsert per namespace
    (the caller changes media in the same transaction, so the counters never drift)."""
    for namespace, (count, size) in sorted(deltas.items()):  # one lock order: no deadlock
        if count == 0 and size == 0:
            continue
        statement = upsert(conn, namespace_totals).values(
            team_id=team_id, namespace=namespace, media_count=count, bytes=size)
        await conn.execute(statement.on_conflict_do_update(
            index_elements=["team_id", "namespace"],
            set_={"media_count": namespace_totals.c.media_count + count,
                  "bytes": namespace_totals.c.bytes + size},
        ))


async def namespace_totals_of(conn: AsyncConnection, team_id: int) -> list[tuple[str, int, int]]:
    """(namespace, live media count, bytes) per namespace, biggest count first: read from the
    counters, so its cost is the team's number of namespaces, not of media."""
    rows = await conn.execute(
        sa.select(namespace_totals.c.namespace, namespace_totals.c.media_count,
                  namespace_totals.c.bytes)
        .where(namespace_totals.c.team_id == team_id, namespace_totals.c.media_count > 0)
        .order_by(namespace_totals.c.media_count.desc(), namespace_totals.c.namespace)
    )
    return [(str(ns), int(n), int(size)) for ns, n, size in rows]


async def recount_team(conn: AsyncConnection, team_id: int) -> None:
    """Rebuild a team's namespace counters and stored bytes from its rows (a full scan: for
    bulk loads and repairs, never on a request path)."""
    live = sa.and_(media.c.team_id == team_id, media.c.deleted_at.is_(None))
    await conn.execute(sa.delete(namespace_totals).where(namespace_totals.c.team_id == team_id))
    await conn.execute(sa.insert(namespace_totals).from_select(
        ["team_id", "namespace", "media_count", "bytes"],
        sa.select(media.c.team_id, media.c.namespace, sa.func.count(),
                  sa.func.coalesce(sa.func.sum(media.c.filesize), 0))
        .where(live, media.c.namespace.is_not(None))
        .group_by(media.c.team_id, media.c.namespace),
    ))
    stored = sa.select(sa.func.coalesce(sa.func.sum(media.c.filesize), 0)).where(live)
    await conn.execute(sa.update(teams).where(teams.c.id == team_id)
                       .values(storage_bytes=stored.scalar_subquery()))
