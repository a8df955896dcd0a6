"""Queries on media rows and their tags.

Every query that a client can reach takes the caller's ``team_id`` and puts it in the WHERE
clause, so another team's ids simply match nothing. Deleted rows stay (soft delete) but are
invisible to every query here except the retention sweeper's.

List order is newest first by ``sort_at`` (the custom ``date`` or else the creation time), with
``seq`` breaking ties; the cursor is that pair, so pages are stable under concurrent inserts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from api.db.schema import media, media_tags, teams

TagMode = Literal["all", "any"]


@dataclass(slots=True)
class MediaRecord:
    seq: int
    id: str
    team_id: int
    team_hash: str
    account_id: int | None
    name: str
    extension: str
    width: int
    height: int
    filesize: int
    namespace: str | None
    public: bool
    external_id: str | None
    meta: dict[str, Any]
    date: int | None
    sort_at: int
    created_at: int
    expires_at: int | None
    retain_until: int | None
    tags: list[str] = field(default_factory=list)

    @property
    def effective_expiry(self) -> int | None:
        """When the sweeper will delete it: the earlier of its ``ttl`` and its retention."""
        times = [t for t in (self.expires_at, self.retain_until) if t is not None]
        return min(times) if times else None


_COLUMNS = [c for c in media.c if c.name not in ("deleted_at", "original_removed")]
_SELECT = sa.select(*_COLUMNS, teams.c.hash.label("team_hash")).select_from(
    media.join(teams, media.c.team_id == teams.c.id)
)
_LIVE = media.c.deleted_at.is_(None)


async def _records(conn: AsyncConnection, query: sa.Select[Any]) -> list[MediaRecord]:
    rows = (await conn.execute(query)).mappings().all()
    records = [
        MediaRecord(**{**row, "public": bool(row["public"]), "meta": dict(row["meta"] or {})})
        for row in rows
    ]
    tags = await tags_of(conn, [r.seq for r in records])
    for record in records:
        record.tags = tags.get(record.seq, [])
    return records


async def tags_of(conn: AsyncConnection, seqs: Sequence[int]) -> dict[int, list[str]]:
    if not seqs:
        return {}
    rows = await conn.execute(
        sa.select(media_tags.c.media_seq, media_tags.c.tag)
        .where(media_tags.c.media_seq.in_(seqs))
        .order_by(media_tags.c.media_seq, media_tags.c.position)
    )
    out: dict[int, list[str]] = {}
    for seq, tag in rows:
        out.setdefault(seq, []).append(tag)
    return out


async def insert_media(conn: AsyncConnection, values: dict[str, Any], tags: Sequence[str]) -> int:
    """Insert a row and its tags; raises IntegrityError on a duplicate (team, external_id)."""
    result = await conn.execute(
        sa.insert(media).values(**values, deleted_at=None, original_removed=False)
        .returning(media.c.seq)
    )
    seq = int(result.scalar_one())
    await replace_tags(conn, seq, values["team_id"], tags)
    return seq


async def replace_tags(conn: AsyncConnection, seq: int, team_id: int, tags: Sequence[str]) -> None:
    await conn.execute(sa.delete(media_tags).where(media_tags.c.media_seq == seq))
    if tags:
        await conn.execute(sa.insert(media_tags), [
            {"media_seq": seq, "tag": tag, "position": i, "team_id": team_id}
            for i, tag in enumerate(tags)
        ])


async def get_media(conn: AsyncConnection, media_id: str) -> MediaRecord | None:
    found = await _records(conn, _SELECT.where(media.c.id == media_id, _LIVE))
    return found[0] if found else None


async def get_team_media(conn: AsyncConnection, team_id: int,
                         ids: Iterable[str]) -> list[MediaRecord]:
    ids = list(ids)
    if not ids:
        return []
    return await _records(
        conn, _SELECT.where(media.c.team_id == team_id, media.c.id.in_(ids), _LIVE)
    )


async def media_by_external_id(conn: AsyncConnection, team_id: int,
                               external_id: str) -> MediaRecord | None:
    found = await _records(conn, _SELECT.where(
        media.c.team_id == team_id, media.c.external_id == external_id, _LIVE,
    ))
    return found[0] if found else None


async def list_media(conn: AsyncConnection, team_id: int, *, namespace: str | None,
                     tags: Sequence[str], tag_mode: TagMode, after: tuple[int, int] | None,
                     limit: int, search: str | None = None) -> list[MediaRecord]:
    """One page, newest first; ``after`` is the (sort_at, seq) of the previous page's last item.

    ``search`` keeps names containing it in any case (``%`` and ``_`` are literal); it walks the
    team's rows in list order, which is fine at a library's size and needs no extra index."""
    query = _SELECT.where(media.c.team_id == team_id, _LIVE)
    if namespace is not None:
        query = query.where(media.c.namespace == namespace)
    if search:
        query = query.where(media.c.name.icontains(search, autoescape=True))
    if tags:
        def has(tag_set: Sequence[str]) -> sa.Exists:
            return sa.exists().where(
                media_tags.c.media_seq == media.c.seq, media_tags.c.team_id == team_id,
                media_tags.c.tag.in_(tag_set),
            )
        if tag_mode == "any":
            query = query.where(has(tags))
        else:
            query = query.where(*(has([tag]) for tag in tags))
    if after is not None:
        sort_at, seq = after
        query = query.where(sa.or_(
            media.c.sort_at < sort_at, sa.and_(media.c.sort_at == sort_at, media.c.seq < seq),
        ))
    query = query.order_by(media.c.sort_at.desc(), media.c.seq.desc()).limit(limit)
    return await _records(conn, query)


async def update_media(conn: AsyncConnection, seq: int, values: dict[str, Any]) -> None:
    if values:
        await conn.execute(sa.update(media).where(media.c.seq == seq).values(**values))


@dataclass(frozen=True, slots=True)
class DeletedMedia:
    id: str
    team_id: int
    team_hash: str
    filesize: int


async def mark_deleted(conn: AsyncConnection, condition: sa.ColumnElement[bool],
                       now: int) -> list[DeletedMedia]:
    """Soft-delete the live rows matching ``condition``; only the caller that flips a row gets it.

    The UPDATE .. WHERE deleted_at IS NULL .. RETURNING is what makes the retention sweeper
    and concurrent DELETE requests safe across processes: each row is handed out once.
    """
    result = await conn.execute(
        sa.update(media).where(condition, _LIVE).values(deleted_at=now)
        .returning(media.c.id, media.c.team_id, media.c.filesize)
    )
    rows = result.all()
    if not rows:
        return []
    hashes = dict((await conn.execute(
        sa.select(teams.c.id, teams.c.hash).where(teams.c.id.in_({r[1] for r in rows}))
    )).all())
    return [DeletedMedia(r[0], r[1], hashes[r[1]], int(r[2])) for r in rows]


def by_team_ids(team_id: int, ids: Sequence[str]) -> sa.ColumnElement[bool]:
    return sa.and_(media.c.team_id == team_id, media.c.id.in_(ids))


def by_team_namespace(team_id: int, namespace: str) -> sa.ColumnElement[bool]:
    return sa.and_(media.c.team_id == team_id, media.c.namespace == namespace)


def expired(now: int, limit: int) -> sa.ColumnElement[bool]:
    """Rows whose ttl or retention has passed (at most ``limit`` per sweep)."""
    seqs = (
        sa.select(media.c.seq)
        .where(_LIVE, sa.or_(media.c.expires_at <= now, media.c.retain_until <= now))
        .order_by(media.c.seq).limit(limit)
    )
    return media.c.seq.in_(seqs.scalar_subquery())


async def originals_to_remove(conn: AsyncConnection, deleted_before: int,
                              limit: int) -> list[DeletedMedia]:
    """Deleted rows whose original may still be in the store (a process died mid-delete)."""
    rows = (await conn.execute(
        sa.select(media.c.id, media.c.team_id, teams.c.hash, media.c.filesize)
        .select_from(media.join(teams, media.c.team_id == teams.c.id))
        .where(media.c.deleted_at.is_not(None), media.c.deleted_at <= deleted_before,
               media.c.original_removed.is_(False))
        .limit(limit)
    )).all()
    return [DeletedMedia(r[0], r[1], r[2], int(r[3])) for r in rows]


async def mark_originals_removed(conn: AsyncConnection, ids: Sequence[str]) -> None:
    if ids:
        await conn.execute(
            sa.update(media).where(media.c.id.in_(ids)).values(original_removed=True)
        )


async def namespace_totals(conn: AsyncConnection, team_id: int) -> list[tuple[str, int, int]]:
    """(namespace, live media count, bytes) per namespace, biggest count first."""
    count = sa.func.count(media.c.seq)
    rows = await conn.execute(
        sa.select(media.c.namespace, count, sa.func.coalesce(sa.func.sum(media.c.filesize), 0))
        .where(media.c.team_id == team_id, _LIVE, media.c.namespace.is_not(None))
        .group_by(media.c.namespace)
        .order_by(count.desc(), media.c.namespace)
    )
    return [(ns, int(n), int(size)) for ns, n, size in rows]
