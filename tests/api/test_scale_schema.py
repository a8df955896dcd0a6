"""Revision 0002 on both backends (counters built from existing rows, 64-bit keys) and the plans
of every list filter: an index of live rows, never a scan of the team's media."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from api.db import Database
from api.db.media import insert_media, records
from api.db.media_list import MEDIA_WALK, Walk, choose_walk, list_query
from tests.api.bulk_media import add_rows, run
from tests.api.conftest import BACKENDS, _admin


@pytest.fixture(params=BACKENDS)
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables yet: SQLite in a file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'scale.db'}"
        return
    make: Callable[[], tuple[str, str]] = request.getfixturevalue("postgres_databases")
    name, url = make()
    try:
        yield url
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _upgrade(url: str, revision: str) -> None:
    async def go() -> None:
        db = Database(url)
        try:
            await db.migrate(revision)
        finally:
            await db.close()

    asyncio.run(go())


def _team(url: str, team_hash: str) -> int:
    run(url, "INSERT INTO teams (hash, account_id, storage_bytes, created_at) "
        "VALUES (:h, NULL, 7, 0)", h=team_hash)
    return int(run(url, "SELECT id FROM teams WHERE hash = :h", h=team_hash)[0][0])


def test_revision_0002_counts_existing_rows_and_widens_keys(empty_database: str) -> None:
    url = empty_database
    _upgrade(url, "0001")
    team = _team(url, "teamscale1")
    for number, (namespace, size, deleted) in enumerate([
            ("shop", 100, None), ("shop", 50, None), ("blog", 7, None), (None, 1000, None),
            ("shop", 999, 5), ("gone", 3, 5)]):
        run(url, "INSERT INTO media (id, team_id, name, extension, width, height, filesize,"
            " namespace, public, meta, sort_at, created_at, deleted_at, original_removed)"
            " VALUES (:i, :t, 'a.png', 'png', 1, 1, :s, :ns, true, '{}', :n, :n, :d, false)",
            i=f"OLD{number:09d}", t=team, s=size, ns=namespace, n=number, d=deleted)
    _upgrade(url, "head")

    totals = run(url, "SELECT namespace, media_count, bytes FROM namespace_totals "
                 "WHERE team_id = :t ORDER BY namespace", t=team)
    assert totals == [("blog", 1, 7), ("shop", 2, 150)]
    assert run(url, "SELECT storage_bytes FROM teams WHERE id = :t", t=team) == [(1157,)]

    if url.startswith("postgresql"):
        types = dict(run(url, "SELECT table_name || '.' || column_name, data_type FROM "
                     "information_schema.columns WHERE column_name IN ('seq', 'media_seq')"))
        assert types == {"media.seq": "bigint", "media_tags.media_seq": "bigint"}
        run(url, "SELECT setval(pg_get_serial_sequence('media', 'seq'), 3000000000)")

    async def insert_past_32_bits() -> int:
        db = Database(url)
        try:
            async with db.write() as conn:
                if conn.dialect.name == "sqlite":  # the rowid goes on from the largest one
                    await conn.execute(sa.text("UPDATE media SET seq = 3000000000 WHERE id = "
                                               "'OLD000000000'"))
                return await insert_media(conn, {
                    "id": "NEW000000001", "team_id": team, "account_id": None,
                    "name": "n.png", "extension": "png", "width": 1, "height": 1,
                    "filesize": 11, "namespace": "blog", "public": True, "external_id": None,
                    "meta": {}, "date": None, "sort_at": 1, "created_at": 1,
                    "expires_at": None, "retain_until": None}, ["wide"])
        finally:
            await db.close()

    seq = asyncio.run(insert_past_32_bits())
    assert seq > 2**31
    assert run(url, "SELECT media_count, bytes FROM namespace_totals WHERE team_id = :t AND "
               "namespace = 'blog'", t=team) == [(2, 18)]
    assert run(url, "SELECT media_seq FROM media_tags WHERE tag = 'wide'") == [(seq,)]


FILTERS: dict[str, dict[str, Any]] = {
    "page 1": {},
    "namespace": {"namespace": "ns-3"},
    "common tag": {"tags": ["common"]},
    "rare tag": {"tags": ["rare"]},
    "tags all": {"tags": ["common", "mid"], "tag_mode": "all"},
    "tags never together": {"tags": ["mid", "solo"], "tag_mode": "all"},
    "tags any": {"tags": ["common", "mid"], "tag_mode": "any"},
    "tags any, one rare": {"tags": ["rare", "solo"], "tag_mode": "any"},
    "namespace + tag": {"namespace": "ns-3", "tags": ["common"]},
    "namespace + rare tag": {"namespace": "ns-3", "tags": ["rare"]},
    "namespace + tags any": {"namespace": "ns-3", "tags": ["rare", "mid"], "tag_mode": "any"},
    "cursor deep": {"after": (1_700_020_000, 20_000)},
    "namespace + cursor": {"namespace": "ns-3", "after": (1_700_020_000, 20_000)},
    "tag + cursor": {"tags": ["mid"], "after": (1_700_020_000, 20_000)},
}
"""The walk of each is the one ``choose_walk`` picks on the data below."""


@pytest.fixture(scope="module", params=BACKENDS)
def big_team(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """30,000 media of one team (10 namespaces; tags: common on all, mid on ns-3, solo on
    ns-5, rare on 20; a deleted namespace) beside 10,000 of another, analysed."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('plans') / 'plans.db'}"
        name = None
    else:
        name, url = request.getfixturevalue("postgres_databases")()
    _upgrade(url, "head")
    team, other = _team(url, "planteam01"), _team(url, "planteam02")
    add_rows(url, other, 10_000, namespace="ns-3", tags=["common", "rare"])
    for number in range(10):
        extra = {3: ["mid"], 5: ["solo"]}.get(number, [])
        add_rows(url, team, 2_500, namespace=f"ns-{number}", tags=["common", *extra],
                 sort_at=1_700_000_000 + number * 2_500)
    add_rows(url, team, 20, namespace="ns-3", tags=["rare"], sort_at=1_600_000_000)
    add_rows(url, team, 5_000, namespace=None, tags=[])
    run(url, "UPDATE media SET deleted_at = 1 WHERE team_id = :t AND namespace = 'ns-9'", t=team)
    run(url, "ANALYZE")
    try:
        yield url, team
    finally:
        if name is not None:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _walk_and_query(url: str, team: int, options: dict[str, Any]) -> tuple[Walk, str]:
    async def go() -> tuple[Walk, str]:
        db = Database(url)
        try:
            async with db.read() as conn:
                walk = await choose_walk(conn, team, namespace=options.get("namespace"),
                                         tags=options.get("tags", []),
                                         tag_mode=options.get("tag_mode", "all"))
        finally:
            await db.close()
        query = list_query(team, namespace=options.get("namespace"),
                           tags=options.get("tags", []), tag_mode=options.get("tag_mode", "all"),
                           after=options.get("after"), limit=51, walk=walk)
        dialect = postgresql.dialect() if url.startswith("postgresql") else sqlite.dialect()
        return walk, str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))

    return asyncio.run(go())


@pytest.mark.parametrize("name", list(FILTERS))
def test_every_list_filter_is_served_by_an_index(big_team: tuple[str, int], name: str) -> None:
    url, team = big_team
    walk, sql = _walk_and_query(url, team, FILTERS[name])
    if FILTERS[name].get("tags") == ["rare"]:
        assert walk != MEDIA_WALK, "a rare tag is walked through its own index"
    # Merging tag walks, or intersecting two tags' rows, may sort what they found: at most
    # (tags x limit) rows, or the smaller tag's. Nothing else sorts.
    may_sort = walk.every_tag or len(FILTERS[name].get("tags", [])) > 1
    if url.startswith("postgresql"):
        plan = "\n".join(r[0] for r in run(url, "EXPLAIN " + sql))
        assert "Seq Scan on media " not in plan + " ", plan
        if not may_sort:
            assert "Sort" not in plan.replace("Sort Key", ""), f"the index orders:\n{plan}"
        assert "ix_media_live_" in plan or "ix_media_tags_order" in plan, plan
    else:
        plan = "\n".join(str(r[-1]) for r in run(url, "EXPLAIN QUERY PLAN " + sql))
        scans = [line.strip() for line in plan.splitlines()
                 if line.strip().startswith(("SCAN media", "SCAN driver", "SCAN t"))]
        assert all("USING" in line for line in scans), plan
        if not may_sort:
            assert "TEMP B-TREE" not in plan, f"the index orders:\n{plan}"
        assert "ix_media_live_" in plan or "ix_media_tags_order" in plan, plan


def test_each_walk_finds_the_same_page(big_team: tuple[str, int]) -> None:
    """Whatever the walk, a page is the same rows in the same order (brute force: the media
    walk of the same filter)."""
    url, team = big_team

    async def page(options: dict[str, Any], walk: Walk) -> list[int]:
        db = Database(url)
        try:
            async with db.read() as conn:
                found = await records(conn, list_query(
                    team, namespace=options.get("namespace"), tags=options.get("tags", []),
                    tag_mode=options.get("tag_mode", "all"), after=options.get("after"),
                    limit=60, walk=walk))
                return [r.seq for r in found]
        finally:
            await db.close()

    for name, options in FILTERS.items():
        for tag in options.get("tags", []):
            expected = asyncio.run(page(options, MEDIA_WALK))
            assert asyncio.run(page(options, Walk(tag=tag))) == expected or \
                options.get("tag_mode") == "any", name
            if options.get("tag_mode") == "any":
                assert asyncio.run(page(options, Walk(every_tag=True))) == expected, name
