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
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from api.db.counters import add_to_namespaces, free_storage
from api.db.engine import upsert
from api.db.schema import PENDING_REMOVAL, media, media_tags, namespace_deletions, teams


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


_COLUMNS = [c for c in media.c if c.name not in ("deleted_at", "original_removed", "removal_lease")]
SELECT_MEDIA = sa.select(*_COLUMNS, teams.c.hash.label("team_hash")).select_from(
    media.join(teams, media.c.team_id == teams.c.id)
)
_LIVE = media.c.deleted_at.is_(None)


async def records(conn: AsyncConnection, query: sa.Select[Any]) -> list[MediaRecord]:
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
    """Insert a row and its tags, counted in its namespace; raises IntegrityError on a
    duplicate (team, external_id)."""
    result = await conn.execute(
        sa.insert(media).values(**values, deleted_at=None, original_removed=False)
        .returning(media.c.seq)
    )
    seq = int(result.scalar_one())
    await replace_tags(conn, seq, values["team_id"], tags, values["sort_at"])
    if values.get("namespace") is not None:
        await add_to_namespaces(conn, values["team_id"],
                                {values["namespace"]: (1, int(values["filesize"]))})
    return seq


async def replace_tags(conn: AsyncConnection, seq: int, team_id: int, tags: Sequence[str],
                       sort_at: int) -> None:
    """Set a row's tags; each carries the row's ``sort_at``, the order of the tag's index
    (``api.db.media_list``)."""
    await conn.execute(sa.delete(media_tags).where(media_tags.c.media_seq == seq))
    if tags:
        await conn.execute(sa.insert(media_tags), [
            {"media_seq": seq, "tag": tag, "position": i, "team_id": team_id,
             "sort_at": sort_at}
            for i, tag in enumerate(tags)
        ])


async def get_media(conn: AsyncConnection, media_id: str) -> MediaRecord | None:
    found = await records(conn, SELECT_MEDIA.where(media.c.id == media_id, _LIVE))
    return found[0] if found else None


async def get_team_media(conn: AsyncConnection, team_id: int,
                         ids: Iterable[str]) -> list[MediaRecord]:
    ids = list(ids)
    if not ids:
        return []
    return await records(
        conn, SELECT_MEDIA.where(media.c.team_id == team_id, media.c.id.in_(ids), _LIVE)
    )


async def media_by_external_id(conn: AsyncConnection, team_id: int,
                               external_id: str) -> MediaRecord | None:
    found = await records(conn, SELECT_MEDIA.where(
        media.c.team_id == team_id, media.c.external_id == external_id, _LIVE,
    ))
    return found[0] if found else None


async def update_media(conn: AsyncConnection, record: MediaRecord,
                       values: dict[str, Any]) -> None:
    """Change one row; a new namespace moves its count and bytes in ``namespace_totals``."""
    if not values:
        return
    await conn.execute(sa.update(media).where(media.c.seq == record.seq).values(**values))
    if "sort_at" in values and values["sort_at"] != record.sort_at:
        await conn.execute(sa.update(media_tags).where(media_tags.c.media_seq == record.seq)
                           .values(sort_at=values["sort_at"]))
    if "namespace" in values and values["namespace"] != record.namespace:
        await add_to_namespaces(conn, record.team_id, _moves([record], values["namespace"]))


async def update_many(conn: AsyncConnection, team_id: int, records: Sequence[MediaRecord],
                      values: dict[str, Any]) -> None:
    """The same column values on up to a batch of rows (one statement), counters moved."""
    if not values or not records:
        return
    await conn.execute(
        sa.update(media).where(media.c.team_id == team_id,
                               media.c.seq.in_([r.seq for r in records])).values(**values)
    )
    if "namespace" in values:
        await add_to_namespaces(conn, team_id, _moves(records, values["namespace"]))


async def set_tags_many(conn: AsyncConnection, team_id: int,
                        tags_of_records: Sequence[tuple[MediaRecord, Sequence[str]]]) -> None:
    """Replace the tags of up to a batch of rows: one DELETE and one multi-row INSERT."""
    if not tags_of_records:
        return
    await conn.execute(sa.delete(media_tags).where(
        media_tags.c.media_seq.in_([record.seq for record, _ in tags_of_records])))
    rows = [{"media_seq": record.seq, "tag": tag, "position": i, "team_id": team_id,
             "sort_at": record.sort_at}
            for record, tags in tags_of_records for i, tag in enumerate(tags)]
    if rows:
        await conn.execute(sa.insert(media_tags), rows)


def _moves(records: Sequence[MediaRecord], namespace: str | None) -> dict[str, tuple[int, int]]:
    """Counter deltas for moving ``records`` to ``namespace``."""
    deltas: dict[str, tuple[int, int]] = {}
    for record in records:
        if record.namespace == namespace:
            continue
        if record.namespace is not None:
            count, size = deltas.get(record.namespace, (0, 0))
            deltas[record.namespace] = (count - 1, size - record.filesize)
        if namespace is not None:
            count, size = deltas.get(namespace, (0, 0))
            deltas[namespace] = (count + 1, size + record.filesize)
    return deltas


@dataclass(frozen=True, slots=True)
class DeletedMedia:
    id: str
    team_id: int
    team_hash: str
    filesize: int
    seq: int = 0


REMOVAL_LEASE_SECONDS = 300
"""How long a deleter holds a deleted row's removal (original, renditions) before the sweeper
takes it over: longer than a removal of a batch takes, short enough that a deletion a killed
process left half done is finished within minutes."""


async def mark_deleted(conn: AsyncConnection, condition: sa.ColumnElement[bool],
                       now: int) -> list[DeletedMedia]:
    """Soft-delete the live rows matching ``condition`` (a bounded set: ids of one batch, one
    sweep's expired rows) and hold their removal for this caller; only the caller that flips a
    row gets it. Bytes and namespace counts are given back in the same transaction.

    The UPDATE .. WHERE deleted_at IS NULL .. RETURNING is what makes the retention sweeper
    and concurrent DELETE requests safe across processes: each row is handed out once.
    """
    result = await conn.execute(
        sa.update(media).where(condition, _LIVE)
        .values(deleted_at=now, removal_lease=now + REMOVAL_LEASE_SECONDS)
        .returning(media.c.id, media.c.team_id, media.c.filesize, media.c.namespace,
                   media.c.seq)
    )
    rows = result.all()
    if not rows:
        return []
    freed: dict[int, dict[str | None, tuple[int, int]]] = {}
    for _, team_id, size, namespace, _ in rows:
        count, total = freed.setdefault(team_id, {}).get(namespace, (0, 0))
        freed[team_id][namespace] = (count + 1, total + int(size))
    for team_id, per_namespace in freed.items():
        await _give_back(conn, team_id, per_namespace)
    hashes = await _team_hashes(conn, freed)
    return [DeletedMedia(r[0], r[1], hashes[r[1]], int(r[2]), int(r[4])) for r in rows]


NAMESPACE_CHUNK = 20_000
"""Rows one statement of a namespace delete marks: a fraction of a second on either backend
(so no statement nears the database timeout, and SQLite's write lock is held briefly), and a
bounded result to sum."""


async def start_namespace_deletion(conn: AsyncConnection, team_id: int, namespace: str,
                                   claim_until: int) -> int:
    """Record (or extend) the deletion of every row of ``namespace`` that exists now, held by
    the caller until ``claim_until``; returns the last seq it covers. A row inserted after
    this gets a larger seq (a sequence only grows), so an upload made after the delete was
    asked survives it; one in flight at that moment may go either way, counted either way."""
    up_to = int((await conn.execute(sa.select(sa.func.coalesce(sa.func.max(media.c.seq), 0))))
                .scalar_one())
    statement = upsert(conn, namespace_deletions).values(
        team_id=team_id, namespace=namespace, up_to_seq=up_to, claimed_until=claim_until)
    await conn.execute(statement.on_conflict_do_update(
        index_elements=["team_id", "namespace"],
        set_={"up_to_seq": up_to, "claimed_until": claim_until}))
    return up_to


async def claim_namespace_deletion(conn: AsyncConnection, now: int,
                                   claim_until: int) -> tuple[int, str, int] | None:
    """Take one deletion nobody holds (its request answered, or its worker died):
    (team_id, namespace, up_to_seq), or None."""
    free = (sa.select(namespace_deletions.c.team_id, namespace_deletions.c.namespace,
                      namespace_deletions.c.up_to_seq)
            .where(sa.or_(namespace_deletions.c.claimed_until.is_(None),
                          namespace_deletions.c.claimed_until <= now))
            .limit(1).with_for_update(skip_locked=True))
    found = (await conn.execute(free)).first()
    if found is None:
        return None
    team_id, namespace, up_to = int(found[0]), str(found[1]), int(found[2])
    await claim_more(conn, team_id, namespace, claim_until)
    return team_id, namespace, up_to


async def claim_more(conn: AsyncConnection, team_id: int, namespace: str,
                     claim_until: int | None) -> None:
    """Hold a deletion until ``claim_until`` (between chunks: longer), or release it (None)."""
    await conn.execute(sa.update(namespace_deletions)
                       .where(_deletion(team_id, namespace)).values(claimed_until=claim_until))


async def end_namespace_deletion(conn: AsyncConnection, team_id: int, namespace: str, *,
                                 done: bool) -> None:
    """Forget a finished deletion, or release an unfinished one to the sweepers."""
    if done:
        await conn.execute(sa.delete(namespace_deletions).where(_deletion(team_id, namespace)))
    else:
        await claim_more(conn, team_id, namespace, None)


def _deletion(team_id: int, namespace: str) -> sa.ColumnElement[bool]:
    return sa.and_(namespace_deletions.c.team_id == team_id,
                   namespace_deletions.c.namespace == namespace)


def _in_namespace(team_id: int, namespace: str, up_to_seq: int) -> sa.ColumnElement[bool]:
    return sa.and_(media.c.team_id == team_id, media.c.namespace == namespace, _LIVE,
                   media.c.seq <= up_to_seq)


async def mark_namespace_chunk(conn: AsyncConnection, team_id: int, namespace: str,
                               up_to_seq: int, now: int, limit: int = NAMESPACE_CHUNK) -> int:
    """Soft-delete up to ``limit`` live rows of the deletion, in one statement that binds no
    parameter per row; the team's counters change in the same transaction. Their removal is
    left unclaimed for the sweeper. Returns how many this call marked (fewer than ``limit``:
    the deletion is done). Concurrent workers skip each other's rows (PostgreSQL: SKIP
    LOCKED; SQLite: one writer at a time)."""
    picked = (sa.select(media.c.seq).where(_in_namespace(team_id, namespace, up_to_seq))
              .limit(limit).with_for_update(skip_locked=True))
    rows = (await conn.execute(
        sa.update(media).where(media.c.seq.in_(picked.scalar_subquery()), _LIVE)
        .values(deleted_at=now, removal_lease=None)
        .returning(media.c.filesize)
    )).all()
    if rows:
        size = sum(int(r[0]) for r in rows)
        await _give_back(conn, team_id, {namespace: (len(rows), size)})
    return len(rows)


async def namespace_rows_left(conn: AsyncConnection, team_id: int, namespace: str,
                              up_to_seq: int) -> int:
    """Live rows a deletion has still to mark (a count through the namespace's index)."""
    return int((await conn.execute(sa.select(sa.func.count()).select_from(media)
                                   .where(_in_namespace(team_id, namespace, up_to_seq))))
               .scalar_one())


async def _give_back(conn: AsyncConnection, team_id: int,
                     per_namespace: dict[str | None, tuple[int, int]]) -> None:
    await free_storage(conn, team_id, sum(size for _, size in per_namespace.values()))
    await add_to_namespaces(conn, team_id, {
        namespace: (-count, -size) for namespace, (count, size) in per_namespace.items()
        if namespace is not None
    })


async def _team_hashes(conn: AsyncConnection, team_ids: Iterable[int]) -> dict[int, str]:
    return {int(k): str(v) for k, v in (await conn.execute(
        sa.select(teams.c.id, teams.c.hash).where(teams.c.id.in_(set(team_ids)))
    )).all()}


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


async def claim_removals(conn: AsyncConnection, now: int, limit: int) -> list[DeletedMedia]:
    """Take up to ``limit`` deleted rows whose original is not removed yet and that nobody
    holds (never claimed: a bulk delete; or a lease that passed: its deleter died), holding
    them for ``REMOVAL_LEASE_SECONDS``. Several processes sweeping get disjoint rows
    (PostgreSQL: SKIP LOCKED; SQLite: one writer at a time)."""
    free = (
        sa.select(media.c.seq).where(
            PENDING_REMOVAL,
            sa.or_(media.c.removal_lease.is_(None), media.c.removal_lease <= now))
        .order_by(media.c.deleted_at).limit(limit).with_for_update(skip_locked=True)
    )
    rows = (await conn.execute(
        sa.update(media).where(media.c.seq.in_(free.scalar_subquery()))
        .values(removal_lease=now + REMOVAL_LEASE_SECONDS)
        .returning(media.c.id, media.c.team_id, media.c.filesize, media.c.seq)
    )).all()
    if not rows:
        return []
    hashes = await _team_hashes(conn, {r[1] for r in rows})
    return [DeletedMedia(r[0], r[1], hashes[r[1]], int(r[2]), int(r[3])) for r in rows]


async def mark_originals_removed(conn: AsyncConnection, removed: Sequence[DeletedMedia]) -> None:
    """Note a batch of removals done; the tags of those rows go with them (nothing lists a
    deleted row, and the tag index stays the size of the live library)."""
    if removed:
        seqs = [item.seq for item in removed]
        await conn.execute(
            sa.update(media).where(media.c.seq.in_(seqs))
            .values(original_removed=True, removal_lease=None)
        )
        await conn.execute(sa.delete(media_tags).where(media_tags.c.media_seq.in_(seqs)))


@dataclass(frozen=True, slots=True)
class StoredRow:
    """What the reconciler needs of a row: is its original meant to be in the store?"""

    id: str
    created_at: int
    live: bool
    """Not deleted: its original must exist."""
    removed: bool
    """Deleted and its original removed: an original under this id is nobody's."""


def _byte_order(column: sa.ColumnElement[str], conn: AsyncConnection) -> sa.ColumnElement[str]:
    """Compare and sort as bytes, like the store's listings (PostgreSQL's default collation
    may not; SQLite's BINARY does)."""
    return column.collate("C") if conn.dialect.name == "postgresql" else column


async def team_id_by_hash(conn: AsyncConnection, team_hash: str) -> int | None:
    found = await conn.execute(sa.select(teams.c.id).where(teams.c.hash == team_hash))
    value = found.scalar_one_or_none()
    return int(value) if value is not None else None


async def team_rows(conn: AsyncConnection, team_id: int, after: str | None,
                    limit: int) -> list[StoredRow]:
    """The next ``limit`` rows of a team (deleted ones too) after id ``after``, by id in byte
    order: one side of the reconciler's merge."""
    ordered = _byte_order(media.c.id, conn)
    query = (sa.select(media.c.id, media.c.created_at, media.c.deleted_at,
                       media.c.original_removed)
             .where(media.c.team_id == team_id).order_by(ordered).limit(limit))
    if after is not None:
        query = query.where(ordered > after)
    rows = (await conn.execute(query)).all()
    return [StoredRow(r[0], int(r[1]), r[2] is None, bool(r[3])) for r in rows]


async def live_rows_by_team(conn: AsyncConnection, created_before: int) -> dict[str, int]:
    """Live rows created before ``created_before``, counted per team hash: the reconciler
    finds teams whose originals are all missing (the store lists nothing of them)."""
    rows = await conn.execute(
        sa.select(teams.c.hash, sa.func.count())
        .select_from(media.join(teams, media.c.team_id == teams.c.id))
        .where(_LIVE, media.c.created_at < created_before)
        .group_by(teams.c.hash)
    )
    return {str(team_hash): int(count) for team_hash, count in rows}


async def owning_rows(conn: AsyncConnection, ids: Sequence[str]) -> list[str]:
    """Which of ``ids`` have a row that still owns its original (live, or deleted with the
    removal not yet recorded): the reconciler's last check before removing an original."""
    rows = await conn.execute(
        sa.select(media.c.id).where(media.c.id.in_(ids),
                                    sa.or_(_LIVE, media.c.original_removed.is_(False))))
    return [str(r[0]) for r in rows]
