"""Put N media of ONE team straight into the database, for the scale benchmark (issue 12).

    python -m bench.seed_media --database-url URL --rows N [--team-email EMAIL] [--seed S]

The database must be migrated already (``api.db.engine.Database(url).migrate()``, which
``imgpro serve`` also does at start-up). The team's account, its team and a working API key
are made (or the account and team reused) through the same queries ``POST /v1/keys`` runs
(``api.db.accounts``): the account is verified and on the ``max`` plan, the key is ``active``
with read and write abilities and only its SHA-256 stored, as the API stores keys. The key is
printed (and returned by ``seed_media``), so the API works with it at once.

Rows go in without the API: PostgreSQL by binary COPY (asyncpg ``copy_records_to_table``),
SQLite by ``executemany`` in chunks, one transaction per ``SQLITE_ROWS_PER_COMMIT`` rows. With
``rebuild_indexes`` (the default; ``--keep-indexes`` turns it off) the indexes and constraints
of ``media`` and ``media_tags`` are dropped first and rebuilt from their own definitions
after the load (PostgreSQL: ``pg_get_indexdef``/``pg_get_constraintdef``; SQLite: the
``sqlite_master`` SQL of its named indexes), which is several times faster than keeping them
up to date row by row: run it on a database of its own, not under a live server. Then
PostgreSQL gets ``VACUUM (ANALYZE)`` (a bulk-loaded table otherwise has no visibility map, so
index-only scans would visit the heap until autovacuum ran in the middle of a benchmark),
SQLite ``ANALYZE``, and ``api.db.counters.recount_team`` rebuilds the team's
``namespace_totals`` and ``teams.storage_bytes`` exactly from the rows.

The distribution (``DISTRIBUTION_VERSION``; the same ``--seed`` gives the same rows, except
the media ids, which are always fresh random ones so that two runs never collide):

- ids: 12 base62 characters from ``os.urandom`` without modulo bias, the shape
  ``api.rules.ids.new_media_id`` makes; ``seq`` is consecutive after the table's largest.
- namespaces: every 20th row (``i % 20 == 19``) is in ``DELETE_NAMESPACE``, exactly
  ``rows // 20`` (5%) spread evenly over time and over the table (the namespace delete of the
  benchmark); of the rest, ``NO_NAMESPACE_SHARE`` (15%) have none and the others fall in the
  20 ``NAMESPACES`` with Zipf weights 1/k^1.2 (the first ~27% of those, the last ~0.8%, i.e.
  ~21% and ~0.6% of the team).
- tags: 0-4 per media (P = 0.40, 0.25, 0.17, 0.11, 0.07; mean 1.2), drawn by weight from a
  vocabulary of 50 (``TAGS``) and de-duplicated: ``COMMON_TAG`` on ~10% of media,
  ``SECOND_TAG`` ~6%, ``MID_TAG`` ~1%, ``RARE_TAG`` ~0.01%, the 46 others from ~5.6% down to
  ~0.6% (geometric). The exact counts are in the returned ``SeedResult.tag_counts``.
- time: ``created_at`` uniform over the ``YEARS`` (6) years before the seed time; 25% of the
  rows have a ``date`` (taken 0-2 years before their upload), which is then their
  ``sort_at``, as the API sets it.
- files: JPEG 70%, PNG 15%, WebP 10%, GIF 3%, AVIF 2%, common camera/screen dimensions;
  ``filesize`` log-normal, median 180 KB, sigma 1.0 (mean ~300 KB), clamped to 1 KB-70 MB.
- the rest: 90% public, 30% with an ``external_id`` (unique), 20% with a small
  ``metadata`` object; no ttl, no retention (a verified account), nothing deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import random
import sqlite3
import string
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from api.db import Database
from api.db.accounts import count_key, ensure_account, insert_key, team_of_account
from api.db.counters import recount_team
from api.db.schema import accounts
from api.rules.ids import hash_api_key, new_api_key, new_key_id

DISTRIBUTION_VERSION = 1
DEFAULT_EMAIL = "scale-bench@example.com"
DELETE_NAMESPACE = "archive-2019"
DELETE_EVERY = 20
"""Row ``i`` is in ``DELETE_NAMESPACE`` when ``i % DELETE_EVERY == DELETE_EVERY - 1``: 5%."""
NAMESPACES = (
    "products", "user-uploads", "blog", "avatars", "marketing", "catalog-2024", "docs",
    "support", "events", "press", "social", "banners", "team", "recipes", "travel", "newsletter",
    "real-estate", "portfolio", "legal", "test",
)
NO_NAMESPACE_SHARE = 0.15
ZIPF_EXPONENT = 1.2

COMMON_TAG, SECOND_TAG, MID_TAG, RARE_TAG = "product", "outdoor", "portrait", "recalled"
TAG_COUNT_WEIGHTS = (0.40, 0.25, 0.17, 0.11, 0.07)
"""P(0 tags) .. P(4 tags)."""
_FILLER_TAGS = (
    "summer", "winter", "red", "blue", "green", "black", "white", "people", "food", "city",
    "nature", "night", "beach", "mountain", "street", "interior", "detail", "hero", "thumbnail",
    "banner", "draft", "approved", "print", "web", "mobile", "desktop", "logo", "icon",
    "background", "texture", "animal", "car", "sport", "music", "art", "vintage", "minimal",
    "sale", "new", "2023", "2024", "team", "office", "event", "review", "archive",
)
TAGS = (COMMON_TAG, SECOND_TAG, MID_TAG, RARE_TAG, *_FILLER_TAGS)
EXTENSIONS = (("jpeg", 0.70), ("png", 0.15), ("webp", 0.10), ("gif", 0.03), ("avif", 0.02))
DIMENSIONS = ((4032, 3024), (3024, 4032), (1920, 1080), (1080, 1920), (1280, 720), (2048, 1536),
              (1080, 1080), (800, 600), (6000, 4000), (640, 480), (2560, 1440), (512, 512))
YEARS = 6
YEAR = 365 * 86_400
MEDIAN_FILESIZE = 180_000
FILESIZE_SIGMA = 1.0
MIN_FILESIZE, MAX_FILESIZE = 1_000, 70 * 1024 * 1024

CHUNK = 50_000
"""Rows generated (and sent in one COPY or executemany) at a time."""
SQLITE_ROWS_PER_COMMIT = 500_000
BULK_TIMEOUT = 3600.0
"""Seconds a statement of the seeder may take (the API's 10 s is for requests, not bulk work)."""
REBUILD_MIN_ROWS = 20_000
"""Below this, dropping and rebuilding the indexes costs more than it saves."""

MEDIA_COLUMNS = (
    "seq", "id", "team_id", "account_id", "name", "extension", "width", "height", "filesize",
    "namespace", "public", "external_id", "meta", "date", "sort_at", "created_at", "expires_at",
    "retain_until", "deleted_at", "original_removed",
)
TAG_COLUMNS = ("media_seq", "tag", "position", "team_id", "sort_at")
BASE62 = string.digits + string.ascii_letters
_ID_TABLE = bytes(ord(BASE62[b % 62]) for b in range(256))
_ID_BIASED = bytes(range(62 * 4, 256))
"""Bytes 248-255 would make the first 8 characters more likely: dropped, not folded."""


@dataclass
class SeedResult:
    """What was seeded, and what a benchmark needs to use it."""

    database_url: str
    email: str
    api_key: str
    account_id: int
    team_id: int
    team_hash: str
    rows: int
    first_seq: int
    last_seq: int
    delete_namespace: str
    delete_count: int
    delete_bytes: int
    namespace_counts: dict[str, int]
    no_namespace: int
    tag_counts: dict[str, int]
    total_bytes: int
    seconds: float
    load_seconds: float
    index_seconds: float
    analyze_seconds: float
    recount_seconds: float
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _Stats:
    namespaces: Counter[str | None] = field(default_factory=Counter)
    tags: Counter[str] = field(default_factory=Counter)
    bytes_by_namespace: Counter[str | None] = field(default_factory=Counter)


def _cumulative(weights: Sequence[float]) -> list[float]:
    return list(itertools.accumulate(weights))


def tag_weights() -> list[float]:
    """Per-draw weights of ``TAGS`` such that each tag's share of media is about its target."""
    mean_tags = sum(k * p for k, p in enumerate(TAG_COUNT_WEIGHTS))
    named = {COMMON_TAG: 0.10, SECOND_TAG: 0.06, MID_TAG: 0.01, RARE_TAG: 0.0001}
    rest = mean_tags - sum(named.values())
    ratio = 0.95
    scale = rest * (1 - ratio) / (1 - ratio ** len(_FILLER_TAGS))
    fillers = [scale * ratio**j for j in range(len(_FILLER_TAGS))]
    return [named[t] for t in TAGS[:4]] + fillers


def namespace_weights() -> list[float]:
    zipf = [1 / (k + 1) ** ZIPF_EXPONENT for k in range(len(NAMESPACES))]
    total = sum(zipf)
    return [NO_NAMESPACE_SHARE] + [(1 - NO_NAMESPACE_SHARE) * w / total for w in zipf]


def media_ids(count: int) -> list[str]:
    """``count`` random 12-character base62 ids (what ``new_media_id`` makes, much faster)."""
    out: list[str] = []
    while len(out) < count:
        need = (count - len(out)) * 12
        text = os.urandom(need + need // 16 + 64).translate(_ID_TABLE, _ID_BIASED).decode()
        out.extend(text[i:i + 12] for i in range(0, len(text) - 11, 12))
    return out[:count]


def generate(rows: int, *, start_index: int, first_seq: int, team_id: int, account_id: int,
             now: int, rng: random.Random, stats: _Stats) -> Iterator[tuple[list[tuple[Any, ...]],
                                                                           list[tuple[Any, ...]]]]:
    """Chunks of (media rows, media_tags rows) in ``MEDIA_COLUMNS``/``TAG_COLUMNS`` order."""
    ns_population: list[str | None] = [None, *NAMESPACES]
    ns_cum = _cumulative(namespace_weights())
    tag_cum = _cumulative(tag_weights())
    count_cum = _cumulative(TAG_COUNT_WEIGHTS)
    ext_names = [e for e, _ in EXTENSIONS]
    ext_cum = _cumulative([w for _, w in EXTENSIONS])
    log_median = math.log(MEDIAN_FILESIZE)
    span = YEARS * YEAR
    done = 0
    while done < rows:
        size = min(CHUNK, rows - done)
        ids = media_ids(size)
        namespaces = rng.choices(ns_population, cum_weights=ns_cum, k=size)
        tag_counts = rng.choices(range(5), cum_weights=count_cum, k=size)
        drawn = rng.choices(TAGS, cum_weights=tag_cum, k=sum(tag_counts))
        extensions = rng.choices(ext_names, cum_weights=ext_cum, k=size)
        dimensions = rng.choices(DIMENSIONS, k=size)
        media_rows: list[tuple[Any, ...]] = []
        tag_rows: list[tuple[Any, ...]] = []
        rand = rng.random
        position = 0
        for j in range(size):
            index = start_index + done + j
            seq = first_seq + done + j
            namespace = DELETE_NAMESPACE if index % DELETE_EVERY == DELETE_EVERY - 1 \
                else namespaces[j]
            filesize = int(math.exp(log_median + FILESIZE_SIGMA * rng.gauss()))
            filesize = min(MAX_FILESIZE, max(MIN_FILESIZE, filesize))
            created_at = now - 86_400 - int(rand() * span)
            date = created_at - int(rand() * 2 * YEAR) if rand() < 0.25 else None
            extension = extensions[j]
            width, height = dimensions[j]
            meta = f'{{"alt": "Image {index}", "source": "camera"}}' if rand() < 0.2 else "{}"
            media_rows.append((
                seq, ids[j], team_id, account_id,
                f"IMG_{index:08d}.{'jpg' if extension == 'jpeg' else extension}",
                extension, width, height, filesize, namespace, rand() < 0.9,
                f"ext-{index}" if rand() < 0.3 else None, meta, date,
                date if date is not None else created_at, created_at,
                None, None, None, False,
            ))
            stats.namespaces[namespace] += 1
            stats.bytes_by_namespace[namespace] += filesize
            k = tag_counts[j]
            if k:
                tags = list(dict.fromkeys(drawn[position:position + k]))
                position += k
                sort_at = date if date is not None else created_at
                for p, tag in enumerate(tags):
                    tag_rows.append((seq, tag, p, team_id, sort_at))
                stats.tags.update(tags)
        done += size
        yield media_rows, tag_rows


# --- the team, its account and key --------------------------------------------------------


async def ensure_team(db: Database, email: str, now: int) -> tuple[int, int, str, str]:
    """(account id, team id, team hash, a new active API key) for ``email``."""
    key = new_api_key()
    async with db.write() as conn:
        account, _ = await ensure_account(conn, email, now)
        team = await team_of_account(conn, account["id"], now)
        await conn.execute(sa.update(accounts).where(accounts.c.id == account["id"])
                           .values(verified=True, verified_at=account["verified_at"] or now,
                                   plan="max"))
        await insert_key(conn, key_id=new_key_id(), key_hash=hash_api_key(key),
                         account_id=account["id"], team_id=team["id"], name="scale bench",
                         abilities="read,write", status="active", now=now)
        await count_key(conn, account["id"])
    return int(account["id"]), int(team["id"]), str(team["hash"]), key


# --- PostgreSQL ---------------------------------------------------------------------------


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _pg_structure(conn: Any) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """Constraints (table, name, definition; keys and uniques before foreign keys) and the
    other indexes (name, definition) of media and media_tags, to drop and rebuild."""
    constraints = await conn.fetch(
        """SELECT c.conrelid::regclass::text AS tbl, c.conname, pg_get_constraintdef(c.oid) AS def,
                  c.contype
           FROM pg_constraint c
           WHERE c.contype IN ('p', 'u', 'f')
             AND (c.conrelid IN ('media'::regclass, 'media_tags'::regclass)
                  OR c.confrelid IN ('media'::regclass, 'media_tags'::regclass))
           ORDER BY c.contype = 'f', c.conname""")
    indexes = await conn.fetch(
        """SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
           FROM pg_index i
           WHERE i.indrelid IN ('media'::regclass, 'media_tags'::regclass)
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
           ORDER BY 1""")
    return ([(r["tbl"], r["conname"], r["def"]) for r in constraints],
            [(r["name"], r["def"]) for r in indexes])


async def _seed_postgres(url: str, rows: int, *, team_id: int, account_id: int, now: int,
                         rng: random.Random, stats: _Stats, rebuild: bool,
                         timings: dict[str, float]) -> int:
    import asyncpg

    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        await conn.execute("SET maintenance_work_mem = '512MB'")
        start_index = await conn.fetchval("SELECT count(*) FROM media WHERE team_id = $1", team_id)
        first_seq = int(await conn.fetchval("SELECT coalesce(max(seq), 0) + 1 FROM media"))
        started = time.perf_counter()
        async with conn.transaction():
            constraints, indexes = await _pg_structure(conn) if rebuild else ([], [])
            for table, name, _ in reversed(constraints):  # foreign keys first
                await conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            for name, _ in indexes:
                await conn.execute(f"DROP INDEX {name}")
            for media_rows, tag_rows in generate(
                    rows, start_index=start_index, first_seq=first_seq, team_id=team_id,
                    account_id=account_id, now=now, rng=rng, stats=stats):
                await conn.copy_records_to_table("media", records=media_rows,
                                                 columns=MEDIA_COLUMNS)
                if tag_rows:
                    await conn.copy_records_to_table("media_tags", records=tag_rows,
                                                     columns=TAG_COLUMNS)
            timings["load"] = time.perf_counter() - started
            started = time.perf_counter()
            for table, name, definition in constraints:
                await conn.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
            for _, definition in indexes:
                await conn.execute(definition)
            await conn.execute(
                "SELECT setval(pg_get_serial_sequence('media', 'seq'), "
                "(SELECT max(seq) FROM media))")
            timings["indexes"] = time.perf_counter() - started
        started = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE) media")
        await conn.execute("VACUUM (ANALYZE) media_tags")
        timings["analyze"] = time.perf_counter() - started
        return first_seq
    finally:
        await conn.close()


# --- SQLite -------------------------------------------------------------------------------


def _sqlite_path(url: str) -> str:
    database = make_url(url).database
    if not database:
        raise ValueError(f"not a SQLite file URL: {url}")
    return database


def _seed_sqlite(url: str, rows: int, *, team_id: int, account_id: int, now: int,
                 rng: random.Random, stats: _Stats, rebuild: bool,
                 timings: dict[str, float]) -> int:
    conn = sqlite3.connect(_sqlite_path(url), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-262144")  # 256 MB for this connection
        start_index = conn.execute("SELECT count(*) FROM media WHERE team_id = ?",
                                   (team_id,)).fetchone()[0]
        first_seq = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM media").fetchone()[0]
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND tbl_name IN ('media', 'media_tags') ORDER BY name").fetchall() if rebuild else []
        media_sql = (f"INSERT INTO media ({', '.join(MEDIA_COLUMNS)}) "
                     f"VALUES ({', '.join('?' * len(MEDIA_COLUMNS))})")
        tags_sql = (f"INSERT INTO media_tags ({', '.join(TAG_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(TAG_COLUMNS))})")
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        pending = 0
        for media_rows, tag_rows in generate(
                rows, start_index=start_index, first_seq=first_seq, team_id=team_id,
                account_id=account_id, now=now, rng=rng, stats=stats):
            conn.executemany(media_sql, media_rows)
            conn.executemany(tags_sql, tag_rows)
            pending += len(media_rows)
            if pending >= SQLITE_ROWS_PER_COMMIT:
                conn.execute("COMMIT")
                conn.execute("BEGIN IMMEDIATE")
                pending = 0
        timings["load"] = time.perf_counter() - started
        started = time.perf_counter()
        for _, definition in indexes:
            conn.execute(definition)
        conn.execute("COMMIT")
        timings["indexes"] = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        timings["analyze"] = time.perf_counter() - started
        return int(first_seq)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()


# --- the whole job ------------------------------------------------------------------------


async def _recount(db: Database, team_id: int) -> None:
    async with db.write() as conn:
        await recount_team(conn, team_id)


async def seed_media(database_url: str, rows: int, *, email: str = DEFAULT_EMAIL, seed: int = 12,
                     rebuild_indexes: bool = True, now: int | None = None) -> SeedResult:
    """Seed ``rows`` media for the team of ``email`` into a migrated database."""
    began = time.perf_counter()
    now = int(time.time()) if now is None else now
    db = Database(database_url)
    try:
        account_id, team_id, team_hash, key = await ensure_team(db, email, now)
    finally:
        await db.close()
    rng = random.Random(seed)
    stats = _Stats()
    timings: dict[str, float] = {}
    rebuild = rebuild_indexes and rows >= REBUILD_MIN_ROWS
    if db.dialect == "postgresql":
        first_seq = await _seed_postgres(
            database_url, rows, team_id=team_id, account_id=account_id, now=now, rng=rng,
            stats=stats, rebuild=rebuild, timings=timings)
    else:
        first_seq = await asyncio.to_thread(
            _seed_sqlite, database_url, rows, team_id=team_id, account_id=account_id, now=now,
            rng=rng, stats=stats, rebuild=rebuild, timings=timings)
    started = time.perf_counter()
    db = Database(database_url, timeout=BULK_TIMEOUT)
    try:
        await _recount(db, team_id)
    finally:
        await db.close()
    timings["recount"] = time.perf_counter() - started
    return SeedResult(
        database_url=database_url, email=email, api_key=key, account_id=account_id,
        team_id=team_id, team_hash=team_hash, rows=rows, first_seq=first_seq,
        last_seq=first_seq + rows - 1, delete_namespace=DELETE_NAMESPACE,
        delete_count=stats.namespaces[DELETE_NAMESPACE],
        delete_bytes=stats.bytes_by_namespace[DELETE_NAMESPACE],
        namespace_counts={str(k): v for k, v in stats.namespaces.most_common() if k is not None},
        no_namespace=stats.namespaces[None],
        tag_counts=dict(stats.tags.most_common()),
        total_bytes=sum(stats.bytes_by_namespace.values()),
        seconds=time.perf_counter() - began, load_seconds=timings.get("load", 0.0),
        index_seconds=timings.get("indexes", 0.0), analyze_seconds=timings.get("analyze", 0.0),
        recount_seconds=timings["recount"], timings=timings,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True,
                        help="postgresql://... or sqlite:///path (migrated already)")
    parser.add_argument("--rows", type=int, required=True, help="media to add to the team")
    parser.add_argument("--team-email", default=DEFAULT_EMAIL)
    parser.add_argument("--seed", type=int, default=12, help="seed of the distribution")
    parser.add_argument("--keep-indexes", action="store_true",
                        help="insert with the indexes in place (slower; safe under a server)")
    parser.add_argument("--migrate", action="store_true", help="migrate the database first")
    args = parser.parse_args(argv)

    async def run() -> SeedResult:
        if args.migrate:
            db = Database(args.database_url)
            try:
                await db.migrate()
            finally:
                await db.close()
        return await seed_media(args.database_url, args.rows, email=args.team_email,
                                seed=args.seed, rebuild_indexes=not args.keep_indexes)

    result = asyncio.run(run())
    summary = {k: v for k, v in vars(result).items() if k not in ("tag_counts",)}
    summary["tag_counts_top"] = dict(list(result.tag_counts.items())[:5])
    summary["rare_tag"] = {RARE_TAG: result.tag_counts.get(RARE_TAG, 0),
                           MID_TAG: result.tag_counts.get(MID_TAG, 0)}
    print(json.dumps(summary, indent=2))
    print(f"seeded {result.rows} media in {result.seconds:.1f} s; API key: {result.api_key}")


if __name__ == "__main__":
    main()


