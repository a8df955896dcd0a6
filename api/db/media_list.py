"""Listing a team's media: which ordered index a page walks, so that its cost does not grow
with the team.

A page is newest first by ``(sort_at, seq)`` and stops after ``limit`` matches, so its cost is
how many index entries it walks before it has them. Three walks, each over an index whose
order IS the list order (no sort of a large set, ever):

- **media**: ``ix_media_live_order`` (or ``ix_media_live_namespace_order`` with a namespace),
  live rows only, tags probed per row through ``media_tags``' primary key. Cheap when most
  rows match (no filter, a namespace, a common tag).
- **one tag**: ``ix_media_tags_order`` ``(team_id, tag, sort_at, media_seq)``, the rows that
  carry the tag, in list order (``media_tags.sort_at`` is kept equal to the media's), other
  tags probed, the namespace tested on the row. Cheap for a rare tag, which the media walk
  would look for through the whole team (3.1 s at 10^6 media for two tags no row has both).
- **every tag** (``tag_mode=any``): one tag walk per tag, each stopping at ``limit``, merged:
  at most (tags x limit) rows are sorted.

``choose_walk`` picks the smallest set to walk: a namespace's size is in ``namespace_totals``;
a tag's is counted through its index, stopping at ``TAG_COUNT_CAP`` (a bounded read). So a
page walks at most the smaller of its filters' sets, and usually ``limit`` / (share that
matches) entries of it. The one case that stays linear is two or more common filters with
almost no row in common (two 10% tags that never meet): no ordered index can know that
without walking one of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from api.db.media import SELECT_MEDIA, MediaRecord, records
from api.db.schema import media, media_tags, namespace_totals, teams

TagMode = Literal["all", "any"]
TAG_COUNT_CAP = 2_000
"""A tag's entries are counted up to this: enough to tell a rare tag from a common one at the
cost of one short index-only read per tag."""
_LIVE = media.c.deleted_at.is_(None)


@dataclass(frozen=True, slots=True)
class Walk:
    """The index a page walks: the media's (default), one tag's, or every tag's merged."""

    tag: str | None = None
    every_tag: bool = False


MEDIA_WALK = Walk()


async def list_media(conn: AsyncConnection, team_id: int, *, namespace: str | None,
                     tags: Sequence[str], tag_mode: TagMode, after: tuple[int, int] | None,
                     limit: int, search: str | None = None) -> list[MediaRecord]:
    """One page, newest first; ``after`` is the (sort_at, seq) of the previous page's last item."""
    walk = await choose_walk(conn, team_id, namespace=namespace, tags=tags, tag_mode=tag_mode)
    return await records(conn, list_query(team_id, namespace=namespace, tags=tags,
                                          tag_mode=tag_mode, after=after, limit=limit,
                                          search=search, walk=walk))


async def choose_walk(conn: AsyncConnection, team_id: int, *, namespace: str | None,
                      tags: Sequence[str], tag_mode: TagMode) -> Walk:
    """Walk the smallest of the filters' sets (see the module docstring)."""
    if not tags:
        return MEDIA_WALK
    sizes = {tag: await _tag_size(conn, team_id, tag) for tag in dict.fromkeys(tags)}
    in_namespace = None if namespace is None else await _namespace_size(conn, team_id, namespace)
    if in_namespace is not None:
        # A tag counted up to the cap is only known to be large: the namespace's exact size
        # can be smaller, so such a tag never drives a namespace's page.
        walked = (min(sizes.values()) if tag_mode == "all" or len(sizes) == 1
                  else sum(sizes.values()))
        if in_namespace <= walked or walked >= TAG_COUNT_CAP:
            return MEDIA_WALK
    if tag_mode == "all" or len(sizes) == 1:
        # Walking the rarest tag's rows visits a subset of what the media walk would.
        return Walk(tag=min(sizes, key=lambda tag: sizes[tag]))
    return Walk(every_tag=True)


async def _tag_size(conn: AsyncConnection, team_id: int, tag: str) -> int:
    entries = (sa.select(sa.literal(1)).select_from(media_tags)
               .where(media_tags.c.team_id == team_id, media_tags.c.tag == tag)
               .limit(TAG_COUNT_CAP).subquery())
    return int((await conn.execute(sa.select(sa.func.count()).select_from(entries))).scalar_one())


async def _namespace_size(conn: AsyncConnection, team_id: int, namespace: str) -> int:
    found = await conn.execute(sa.select(namespace_totals.c.media_count).where(
        namespace_totals.c.team_id == team_id, namespace_totals.c.namespace == namespace))
    return int(found.scalar_one_or_none() or 0)


def list_query(team_id: int, *, namespace: str | None, tags: Sequence[str], tag_mode: TagMode,
               after: tuple[int, int] | None, limit: int, search: str | None = None,
               walk: Walk = MEDIA_WALK) -> sa.Select[Any]:
    """The page's SELECT for ``walk`` (tests EXPLAIN each).

    ``search`` keeps names containing it in any case (``%`` and ``_`` are literal); it is
    tested on each row the walk visits, which is fine at a library's size (a rare name in a
    million rows walks them all: an index of name trigrams would be the next step)."""
    if walk.every_tag:
        return _every_tag(team_id, namespace=namespace, tags=tags, after=after, limit=limit,
                          search=search)
    if walk.tag is not None:
        driver = media_tags.alias("driver")
        query = (sa.select(*SELECT_MEDIA.selected_columns)
                 .select_from(driver.join(media, media.c.seq == driver.c.media_seq)
                              .join(teams, media.c.team_id == teams.c.id))
                 .where(driver.c.team_id == team_id, driver.c.tag == walk.tag, _LIVE))
        others = [tag for tag in tags if tag != walk.tag]
        order = (driver.c.sort_at, driver.c.media_seq)
    else:
        query = SELECT_MEDIA.where(media.c.team_id == team_id, _LIVE)
        others = list(tags) if tag_mode == "all" else []
        if tags and tag_mode == "any":
            query = query.where(_has(team_id, tags))
        order = (media.c.sort_at, media.c.seq)
    query = query.where(*(_has(team_id, [tag]) for tag in others))
    query = _filtered(query, namespace=namespace, search=search,
                      indexed_namespace=walk.tag is None)
    if after is not None:
        # A row value is an index condition on both backends (an OR of the two comparisons
        # is only a filter: page 1,000 would walk the 50,000 rows before it).
        query = query.where(sa.tuple_(*order) < sa.tuple_(*after))
    return query.order_by(order[0].desc(), order[1].desc()).limit(limit)


def _every_tag(team_id: int, *, namespace: str | None, tags: Sequence[str],
               after: tuple[int, int] | None, limit: int, search: str | None) -> sa.Select[Any]:
    """``tag_mode=any`` by tags: each tag's walk stops at ``limit``; the page is the newest
    ``limit`` of their union."""
    walks: list[sa.Select[Any]] = []
    for tag in dict.fromkeys(tags):
        driver = media_tags.alias(f"t{len(walks)}")
        one = (sa.select(driver.c.media_seq)
               .select_from(driver.join(media, media.c.seq == driver.c.media_seq))
               .where(driver.c.team_id == team_id, driver.c.tag == tag, _LIVE))
        one = _filtered(one, namespace=namespace, search=search, indexed_namespace=False)
        if after is not None:
            one = one.where(sa.tuple_(driver.c.sort_at, driver.c.media_seq) < sa.tuple_(*after))
        one = one.order_by(driver.c.sort_at.desc(), driver.c.media_seq.desc()).limit(limit)
        walks.append(sa.select(one.subquery().c.media_seq))  # SQLite: no LIMIT in a UNION arm
    union = sa.union(*walks).subquery()
    return (SELECT_MEDIA.where(media.c.seq.in_(sa.select(union.c.media_seq)),
                               media.c.team_id == team_id, _LIVE)
            .order_by(media.c.sort_at.desc(), media.c.seq.desc()).limit(limit))


class _unindexed(FunctionElement[str]):  # noqa: N801 - used like a SQL function
    """A column SQLite must not look up through an index (its planner would rather walk the
    namespace's index and sort than walk the tag's in order); other backends see the column."""

    name = "unindexed"
    inherit_cache = True


@compiles(_unindexed)
def _column_itself(element: _unindexed, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(_unindexed, "sqlite")
def _unary_plus(element: _unindexed, compiler: Any, **kw: Any) -> str:
    return "+" + str(compiler.process(element.clauses, **kw))  # SQLite's documented no-index


def _has(team_id: int, tag_set: Sequence[str]) -> sa.Exists:
    return sa.exists().where(media_tags.c.media_seq == media.c.seq,
                             media_tags.c.team_id == team_id, media_tags.c.tag.in_(tag_set))


def _filtered(query: sa.Select[Any], *, namespace: str | None, search: str | None,
              indexed_namespace: bool = True) -> sa.Select[Any]:
    """The namespace and search conditions; on a tag walk the namespace is tested on each
    row (wrapped, so that no planner walks the namespace's index instead and sorts)."""
    if namespace is not None:
        column = media.c.namespace if indexed_namespace else _unindexed(media.c.namespace)
        query = query.where(column == namespace)
    if search:
        query = query.where(media.c.name.icontains(search, autoescape=True))
    return query
