"""The /v1 API at 10^5, 10^6 and 10^7 media in one team, over HTTP (issue 12).

    python -m bench.api_scale [--backends postgresql,sqlite] [--sizes 1e5,1e6,1e7]
                              [--requests 200] [--warmup 10] [--budget 120]
                              [--out docs/bench-api-scale.md]
                              [--json results.json] [--pg-url postgresql://postgres@127.0.0.1:5432/postgres]

For each backend and size (SQLite only up to ``SQLITE_MAX_ROWS``, 10^6): a fresh database
(PostgreSQL: ``CREATE DATABASE`` through ``--pg-url``, dropped after; SQLite: a file in a
temporary directory, removed after), migrated with ``Database(url).migrate()``, seeded by
``bench.seed_media`` (its docstring gives the distribution), then a real ``imgpro serve``
(one worker, rate limits off, access log off) and one keep-alive HTTP client that sends
requests one at a time. Each operation gets ``--warmup`` unmeasured requests, then
``--requests`` measured ones (wall time from sending to the whole body read); p50/p99 are
nearest-rank. An operation whose measured requests take more than ``--budget`` seconds (120)
in all stops there, after at least ``MIN_SAMPLES`` (10): the report says so, and its p99 is then
that of fewer requests (a query of several seconds would otherwise hold the run for hours).
The operations, in this order:

- reads: list page 1 (no filter); namespace (the largest, ~21% of the team); tags all of 2
  (``product`` ~10% and ``outdoor`` ~6%: ~0.6% match both); tags any of 2 (``portrait`` ~1%,
  ``recalled`` ~0.01%); namespace + tag (largest namespace, ``product``); rare tag
  (``recalled``, ~0.01%); cursor page 2 (the cursor page 1 answered); cursor page 1,000 (the
  cursor of the row at offset 49,949 in list order, built as ``api.routes.media.encode_cursor``
  builds it: the page holds rows 49,951-50,000); ``GET /v1/namespaces``; ``GET /v1/usage``;
- writes: upload of a 64x48 PNG (no namespace); ``PATCH /v1/media/batch`` of 100 random media
  outside the delete namespace (each request moves its 100 into one of the namespaces and
  adds a tag: counters change);
- then ONE ``DELETE /v1/media/batch {"namespace": "archive-2019"}``: its time, status and
  ``deleted`` count against the seeded count (exactly 5%), and whether ``/v1/namespaces`` and
  ``/v1/usage`` asked right after it show the namespace gone and exactly its bytes freed; then
  how long the sweeper takes to remove those originals (polled in the database, up to
  ``--removal-wait`` seconds).

After the timed reads and before the first write (so in the state the reads were timed in),
the statements behind each read (the functions the routes call,
``api.db.media_list.list_media`` and co., run in-process with their SQL captured) are
EXPLAINed: ``EXPLAIN (ANALYZE, BUFFERS)`` on PostgreSQL, ``EXPLAIN QUERY PLAN`` on SQLite.
The report flags a full scan of ``media``/``media_tags`` in any of them and prints the plans
of operations that missed the 50 ms target.

The server's start-up reconcile pass (``api.lifecycle.reconcile``: it counts the live rows
of every team) is waited for through ``/metrics`` before any request, so it is not measured;
its duration is reported. The seeded rows have no originals in the store, so the grace of
the reconciler is set beyond their age (no "missing original" reports) and its interval to a
day (one pass, at start-up).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import math
import os
import platform
import random
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

from api.db import Database
from api.db.counters import namespace_totals_of, team_usage
from api.db.media_list import list_media
from api.rules.plans import month_key
from bench.seed_media import (
    BULK_TIMEOUT,
    COMMON_TAG,
    MID_TAG,
    NAMESPACES,
    RARE_TAG,
    SECOND_TAG,
    SeedResult,
    seed_media,
)
from bench.server_process import RunningServer, ServerSpec, start

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_SIZES = (100_000, 1_000_000, 10_000_000)
SQLITE_MAX_ROWS = 1_000_000
PAGE = 50
DEEP_PAGE = 1_000
BATCH = 100
TARGET_P99_MS = 50.0
DEFAULT_BUDGET = 120.0
MIN_SAMPLES = 10
"""An operation stopped by its time budget still has this many measured requests."""
TARGET_GROWTH = 2.0
BIG_NAMESPACE = NAMESPACES[0]
PATCH_TAG = "reviewed"
TEN_YEARS = 10 * 365 * 86_400
TARGET_OPS = ("list", "namespace", "tags_all", "tags_any", "namespace_tag", "rare_tag",
              "cursor_2", "cursor_deep", "namespaces", "usage")
"""Operations the issue's latency targets are about (lists, cursors, namespaces, usage)."""


@dataclass(frozen=True)
class ReadOp:
    key: str
    label: str
    params: dict[str, str]
    namespace: str | None = None
    tags: tuple[str, ...] = ()
    tag_mode: str = "all"


READ_OPS = (
    ReadOp("list", "list page 1 (no filter)", {}),
    ReadOp("namespace", f"namespace ({BIG_NAMESPACE})", {"namespace": BIG_NAMESPACE},
           namespace=BIG_NAMESPACE),
    ReadOp("tags_all", f"tags all ({COMMON_TAG},{SECOND_TAG})",
           {"tags": f"{COMMON_TAG},{SECOND_TAG}", "tag_mode": "all"},
           tags=(COMMON_TAG, SECOND_TAG)),
    ReadOp("tags_any", f"tags any ({MID_TAG},{RARE_TAG})",
           {"tags": f"{MID_TAG},{RARE_TAG}", "tag_mode": "any"},
           tags=(MID_TAG, RARE_TAG), tag_mode="any"),
    ReadOp("namespace_tag", f"namespace + tag ({BIG_NAMESPACE}, {COMMON_TAG})",
           {"namespace": BIG_NAMESPACE, "tags": COMMON_TAG},
           namespace=BIG_NAMESPACE, tags=(COMMON_TAG,)),
    ReadOp("rare_tag", f"rare tag ({RARE_TAG})", {"tags": RARE_TAG}, tags=(RARE_TAG,)),
)
LABELS = {
    **{op.key: op.label for op in READ_OPS},
    "cursor_2": "cursor page 2 (page 1's cursor)",
    "cursor_deep": "cursor page 1,000",
    "namespaces": "GET /v1/namespaces",
    "usage": "GET /v1/usage",
    "upload": "upload (64x48 PNG)",
    "batch_patch": f"PATCH /v1/media/batch ({BATCH} ids)",
    "namespace_delete": "DELETE /v1/media/batch namespace (5%)",
}


# --- results ------------------------------------------------------------------------------


@dataclass
class OpResult:
    key: str
    label: str
    samples_ms: list[float]
    statuses: dict[str, int]
    note: str = ""

    @property
    def p50(self) -> float:
        return percentile(self.samples_ms, 50)

    @property
    def p99(self) -> float:
        return percentile(self.samples_ms, 99)

    @property
    def all_2xx(self) -> bool:
        return all(200 <= int(s) < 300 for s in self.statuses)

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if int(s) >= 500)


@dataclass
class DeleteCheck:
    status: int
    ms: float
    deleted: int | None
    expected: int
    namespace_before: int | None
    namespace_after: int | None
    storage_before: int
    storage_after: int
    expected_bytes: int
    listed_after: int | None
    removal_seconds: float | None
    removal_pending: int | None
    removal_wait: float

    @property
    def exact(self) -> bool:
        return self.status == 200 and self.deleted == self.expected

    @property
    def reflected(self) -> bool:
        return (self.namespace_before == self.expected and not self.namespace_after
                and self.storage_before - self.storage_after == self.expected_bytes
                and self.listed_after == 0)


@dataclass
class Plan:
    key: str
    text: str
    full_scan: bool


@dataclass
class SizeResult:
    backend: str
    rows: int
    seed_seconds: float
    seed_timings: dict[str, float]
    database_bytes: int
    reconcile_seconds: float | None
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    ops: dict[str, OpResult]
    delete: DeleteCheck
    plans: dict[str, Plan]
    checks: dict[str, bool]
    deep_page: int
    tag_counts: dict[str, int]
    namespace_rows: int

    @property
    def server_errors(self) -> int:
        return sum(op.server_errors for op in self.ops.values())


@dataclass
class Report:
    started: str
    command: str
    machine: str
    requests: int
    warmup: int
    results: list[SizeResult] = field(default_factory=list)


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (p99 of 200 samples is the 198th fastest)."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


# --- databases ----------------------------------------------------------------------------


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def _pg_admin(pg_url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg_url, timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def make_cursor(sort_at: int, seq: int) -> str:
    """The cursor ``api.routes.media.encode_cursor`` makes for a row."""
    raw = orjson.dumps({"s": sort_at, "q": seq})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def _row_at(db: Database, team_id: int, offset: int) -> tuple[int, int]:
    """(sort_at, seq) of the live row at ``offset`` in list order."""
    query = sa.text("SELECT sort_at, seq FROM media WHERE team_id = :team AND deleted_at IS NULL "
                    "ORDER BY sort_at DESC, seq DESC LIMIT 1 OFFSET :offset")
    async with db.read() as conn:
        row = (await conn.execute(query, {"team": team_id, "offset": offset})).one()
    return int(row[0]), int(row[1])


async def _batch_ids(db: Database, seed: SeedResult, count: int, rng: random.Random) -> list[str]:
    """``count`` distinct random live media ids of the team outside the delete namespace."""
    found: list[str] = []
    seen: set[int] = set()
    query = sa.text("SELECT id FROM media WHERE team_id = :team AND deleted_at IS NULL "
                    "AND (namespace IS NULL OR namespace <> :ns) AND seq IN :seqs"
                    ).bindparams(sa.bindparam("seqs", expanding=True))
    async with db.read() as conn:
        while len(found) < count:
            want = min(1000, (count - len(found)) * 2)
            seqs = []
            while len(seqs) < want:
                seq = rng.randint(seed.first_seq, seed.last_seq)
                if seq not in seen:
                    seen.add(seq)
                    seqs.append(seq)
            rows = await conn.execute(query, {"team": seed.team_id, "ns": seed.delete_namespace,
                                              "seqs": seqs})
            found.extend(str(r[0]) for r in rows)
    return found[:count]


async def _pending_removals(db: Database, team_id: int) -> int:
    query = sa.text("SELECT count(*) FROM media WHERE team_id = :team "
                    "AND deleted_at IS NOT NULL AND original_removed = false")
    async with db.read() as conn:
        return int((await conn.execute(query, {"team": team_id})).scalar_one())


async def _database_bytes(db: Database, url: str) -> int:
    if db.dialect == "postgresql":
        async with db.read() as conn:
            return int((await conn.execute(
                sa.text("SELECT pg_database_size(current_database())"))).scalar_one())
    path = Path(sa.engine.make_url(url).database or "")
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


# --- EXPLAIN ------------------------------------------------------------------------------

_PG_FULL_SCAN = re.compile(r"Seq Scan on (media|media_tags)\b")
_SQLITE_FULL_SCAN = re.compile(r"\bSCAN (media|media_tags)\b(?! USING)")


async def explain(db: Database, call: Callable[[AsyncConnection], Awaitable[object]]) -> str:
    """The plans of every statement ``call`` runs (EXPLAIN ANALYZE on PostgreSQL)."""
    captured: list[tuple[str, Any]] = []
    capturing = False

    def listen(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
               _many: bool) -> None:
        if capturing:
            captured.append((statement, parameters))

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", listen)
    try:
        async with db.read() as conn:
            capturing = True
            await call(conn)
            capturing = False
            parts = []
            for statement, parameters in captured:
                if db.dialect == "postgresql":
                    rows = (await conn.exec_driver_sql(
                        "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)).all()
                    plan = "\n".join(str(r[0]) for r in rows)
                else:
                    rows = (await conn.exec_driver_sql(
                        "EXPLAIN QUERY PLAN " + statement, parameters)).all()
                    depth: dict[int, int] = {0: 0}
                    lines = []
                    for node, parent, _, detail in rows:
                        depth[node] = depth.get(parent, 0) + 1
                        lines.append("  " * (depth[node] - 1) + str(detail))
                    plan = "\n".join(lines)
                parts.append(f"-- {_one_line(statement)}\n{plan}")
            return "\n\n".join(parts)
    finally:
        event.remove(engine, "before_cursor_execute", listen)


def _one_line(statement: str, limit: int = 300) -> str:
    text = " ".join(statement.split())
    return text if len(text) <= limit else text[:limit] + " ..."


def full_scan(plan: str) -> bool:
    return bool(_PG_FULL_SCAN.search(plan) or _SQLITE_FULL_SCAN.search(plan))


async def explain_reads(db: Database, team_id: int, cursors: dict[str, tuple[int, int]],
                        now: int) -> dict[str, Plan]:
    calls: dict[str, Callable[[AsyncConnection], Awaitable[object]]] = {}
    for op in READ_OPS:
        calls[op.key] = _list_call(team_id, op.namespace, op.tags, op.tag_mode, None)
    for key, after in cursors.items():
        calls[key] = _list_call(team_id, None, (), "all", after)

    async def namespaces(conn: AsyncConnection) -> object:
        return await namespace_totals_of(conn, team_id)

    async def usage(conn: AsyncConnection) -> object:
        return await team_usage(conn, team_id, month_key(now))

    calls["namespaces"] = namespaces
    calls["usage"] = usage
    plans = {}
    for key, call in calls.items():
        try:
            text = await explain(db, call)
        except Exception as exc:  # noqa: BLE001 - a plan we cannot get is reported, not fatal
            text = f"(no plan: {exc.__class__.__name__}: {exc})"
        plans[key] = Plan(key, text, full_scan(text))  # every statement the read runs
    return plans


def _list_call(team_id: int, namespace: str | None, tags: tuple[str, ...], tag_mode: str,
               after: tuple[int, int] | None) -> Callable[[AsyncConnection], Awaitable[object]]:
    async def call(conn: AsyncConnection) -> object:
        return await list_media(conn, team_id, namespace=namespace, tags=list(tags),
                                tag_mode=tag_mode,  # type: ignore[arg-type]
                                after=after, limit=PAGE + 1, search=None)
    return call


# --- HTTP ---------------------------------------------------------------------------------


def tiny_png(seed: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), color=(seed % 256, (seed // 256) % 256, 120)).save(out, "PNG")
    return out.getvalue()


def _timed(client: httpx.Client, method: str, path: str, **kwargs: Any) -> tuple[float,
                                                                                httpx.Response]:
    began = time.perf_counter()
    response = client.request(method, path, **kwargs)
    response.read()
    return (time.perf_counter() - began) * 1000, response


def measure(key: str, requests: int, warmup: int,
            send: Callable[[int], tuple[float, httpx.Response]], *, budget: float,
            log: Callable[[str], None]) -> OpResult:
    """``warmup`` unmeasured calls of ``send``, then ``requests`` measured ones; an operation
    slower than ``budget`` seconds in all stops early (after at least ``MIN_SAMPLES``)."""
    began = time.monotonic()
    for i in range(warmup):
        send(-1 - i)
        if time.monotonic() - began > budget / 4:
            break
    samples: list[float] = []
    statuses: Counter[str] = Counter()
    began = time.monotonic()
    for i in range(requests):
        ms, response = send(i)
        samples.append(ms)
        statuses[str(response.status_code)] += 1
        if len(samples) >= MIN_SAMPLES and time.monotonic() - began > budget:
            break
    note = (f"stopped after {len(samples)} of {requests} requests (budget {budget:.0f} s)"
            if len(samples) < requests else "")
    result = OpResult(key, LABELS[key], samples, dict(statuses), note)
    log(f"  {result.label}: p50 {result.p50:.1f} ms, p99 {result.p99:.1f} ms, "
        f"{dict(statuses)}{'; ' + note if note else ''}")
    return result


def _get_json(client: httpx.Client, path: str, **params: str) -> Any:
    response = client.get(path, params=params)
    response.raise_for_status()
    return response.json()


def _namespace_count(client: httpx.Client, namespace: str) -> int | None:
    listed = _get_json(client, "/v1/namespaces")["namespaces"]
    return next((int(n["count"]) for n in listed if n["namespace"] == namespace), None)


def _wait_for_reconcile(server: RunningServer, token: str, timeout: float) -> float | None:
    """Seconds until the start-up reconcile pass finished (its gauge is set), or None."""
    began = time.monotonic()
    pattern = re.compile(r"^imgpro_reconcile_last_pass_timestamp_seconds(?:\{[^}]*\})? (\S+)$",
                         re.M)
    with httpx.Client(base_url=server.url, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        while time.monotonic() - began < timeout:
            found = pattern.search(client.get("/metrics").text)
            if found and float(found.group(1)) > 0:
                return time.monotonic() - began
            time.sleep(0.2)
    return None


def run_http(server: RunningServer, seed: SeedResult, *, requests: int, warmup: int,
             cursors: dict[str, tuple[int, int]], batch_ids: list[str],
             removal_wait: float, db_url: str, budget: float,
             log: Callable[[str], None],
             after_reads: Callable[[], None] | None = None) -> tuple[
                 dict[str, OpResult], DeleteCheck, dict[str, bool]]:
    """The timed requests; ``after_reads`` runs between the reads and the first write."""
    headers = {"Authorization": f"Bearer {seed.api_key}"}
    pace: dict[str, Any] = {"budget": budget, "log": log}
    ops: dict[str, OpResult] = {}
    checks: dict[str, bool] = {}
    with httpx.Client(base_url=server.url, headers=headers, timeout=120) as client:
        for op in READ_OPS:
            ops[op.key] = measure(op.key, requests, warmup,
                                  lambda _i, op=op: _timed(client, "GET", "/v1/media",
                                                           params=op.params), **pace)
        first = _get_json(client, "/v1/media")
        checks["list page 1 has 50 items"] = len(first["items"]) == min(PAGE, seed.rows)
        api_cursor = first["cursor"]
        built = make_cursor(*cursors["cursor_2"])
        checks["built cursor equals the API's"] = api_cursor == built
        for key in ("cursor_2", "cursor_deep"):
            cursor = make_cursor(*cursors[key])
            ops[key] = measure(key, requests, warmup,
                               lambda _i, c=cursor: _timed(client, "GET", "/v1/media",
                                                           params={"cursor": c}), **pace)
        deep = _get_json(client, "/v1/media", cursor=make_cursor(*cursors["cursor_deep"]))
        checks["deep cursor page is full"] = len(deep["items"]) == PAGE
        ops["namespaces"] = measure("namespaces", requests, warmup,
                                    lambda _i: _timed(client, "GET", "/v1/namespaces"), **pace)
        ops["usage"] = measure("usage", requests, warmup,
                               lambda _i: _timed(client, "GET", "/v1/usage"), **pace)
        if after_reads is not None:
            after_reads()
        ops["upload"] = measure(
            "upload", requests, warmup,
            lambda i: _timed(client, "POST", "/v1/upload",
                             files={"file": ("bench.png", tiny_png(i + 10_000),
                                             "application/octet-stream")}), **pace)
        batches = [batch_ids[i:i + BATCH] for i in range(0, len(batch_ids), BATCH)]
        updated: list[int] = []

        def patch(i: int) -> tuple[float, httpx.Response]:
            ids = batches[i + warmup]  # warm-up calls come with i = -1, -2, ...
            target = NAMESPACES[(i + warmup) % len(NAMESPACES)]
            ms, response = _timed(client, "PATCH", "/v1/media/batch", json={
                "ids": ids,
                "update": {"namespace": target, "tags": [PATCH_TAG], "tag_mode": "add"},
            })
            if response.status_code == 200:
                updated.append(int(response.json()["updated"]))
            return ms, response

        ops["batch_patch"] = measure("batch_patch", requests, warmup, patch, **pace)
        checks["every batch updated 100"] = all(n == BATCH for n in updated)
        delete = _namespace_delete(client, seed, removal_wait, db_url)
        ops["namespace_delete"] = OpResult("namespace_delete", LABELS["namespace_delete"],
                                           [delete.ms], {str(delete.status): 1},
                                           f"deleted {delete.deleted} of {delete.expected}")
    return ops, delete, checks


def _namespace_delete(client: httpx.Client, seed: SeedResult, removal_wait: float,
                      db_url: str) -> DeleteCheck:
    namespace = seed.delete_namespace
    before = _namespace_count(client, namespace)
    storage_before = int(_get_json(client, "/v1/usage")["storage_used_bytes"])
    ms, response = _timed(client, "DELETE", "/v1/media/batch", json={"namespace": namespace})
    deleted = None
    if response.status_code == 200:
        deleted = int(response.json()["deleted"])
    after = _namespace_count(client, namespace)
    storage_after = int(_get_json(client, "/v1/usage")["storage_used_bytes"])
    listed = len(_get_json(client, "/v1/media", namespace=namespace)["items"])
    removal_seconds: float | None = None
    pending: int | None = None
    if deleted:  # nothing to wait for when the delete did not happen
        removal_seconds, pending = asyncio.run(
            _wait_removals(db_url, seed.team_id, removal_wait))
    return DeleteCheck(
        status=response.status_code, ms=ms, deleted=deleted, expected=seed.delete_count,
        namespace_before=before, namespace_after=after, storage_before=storage_before,
        storage_after=storage_after, expected_bytes=seed.delete_bytes, listed_after=listed,
        removal_seconds=removal_seconds, removal_pending=pending, removal_wait=removal_wait)


async def _wait_removals(db_url: str, team_id: int, wait: float) -> tuple[float | None, int]:
    """Seconds until the sweeper removed every deleted original (None: not within ``wait``),
    and how many were left then."""
    db = Database(db_url, timeout=BULK_TIMEOUT)
    began = time.monotonic()
    try:
        while True:
            pending = await _pending_removals(db, team_id)
            if pending == 0:
                return time.monotonic() - began, 0
            if time.monotonic() - began >= wait:
                return None, pending
            await asyncio.sleep(0.5)
    finally:
        await db.close()


# --- one size on one backend --------------------------------------------------------------


def run_size(backend: str, rows: int, *, requests: int, warmup: int, pg_url: str,
             work_dir: Path, removal_wait: float, budget: float,
             log: Callable[[str], None]) -> SizeResult:
    size_dir = Path(tempfile.mkdtemp(prefix=f"{backend}-{rows}-", dir=work_dir))
    database: str | None = None
    try:
        if backend == "postgresql":
            database = f"imgpro_scale_{rows}_{secrets.token_hex(3)}"
            asyncio.run(_pg_admin(pg_url, f'CREATE DATABASE "{database}"'))
            db_url = _with_database(pg_url, database)
        else:
            db_url = f"sqlite+aiosqlite:///{size_dir / 'data' / 'imgpro.db'}"
            (size_dir / "data").mkdir()
        return _run_on(backend, rows, db_url, size_dir, requests=requests, warmup=warmup,
                       removal_wait=removal_wait, budget=budget, log=log)
    finally:
        if database is not None:
            asyncio.run(_pg_admin(pg_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        shutil.rmtree(size_dir, ignore_errors=True)


def _run_on(backend: str, rows: int, db_url: str, size_dir: Path, *, requests: int,
            warmup: int, removal_wait: float, budget: float,
            log: Callable[[str], None]) -> SizeResult:
    load_before = os.getloadavg()
    now = int(time.time())
    deep_page = min(DEEP_PAGE, max(2, rows // PAGE // 2))

    async def prepare() -> tuple[SeedResult, dict[str, tuple[int, int]], list[str], int]:
        db = Database(db_url, timeout=BULK_TIMEOUT)
        try:
            await db.migrate()
        finally:
            await db.close()
        seed = await seed_media(db_url, rows, now=now)
        db = Database(db_url, timeout=BULK_TIMEOUT)
        try:
            cursors = {"cursor_2": await _row_at(db, seed.team_id, PAGE - 1),
                       "cursor_deep": await _row_at(db, seed.team_id,
                                                    (deep_page - 1) * PAGE - 1)}
            ids = await _batch_ids(db, seed, BATCH * (requests + warmup), random.Random(rows))
            size = await _database_bytes(db, db_url)
        finally:
            await db.close()
        return seed, cursors, ids, size

    log(f"{backend} {rows:,}: migrate + seed")
    seed, cursors, batch_ids, database_bytes = asyncio.run(prepare())
    log(f"{backend} {rows:,}: seeded in {seed.seconds:.1f} s "
        f"({database_bytes / 1e9:.2f} GB); starting the server")
    token = secrets.token_hex(16)
    spec = ServerSpec(
        name=f"imgpro-{backend}-{rows}",
        cmd=[sys.executable, "-m", "api", "serve", "--port", "0",
             "--data-dir", str(size_dir / "data")],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "IMGPRO_HOST": "127.0.0.1", "IMGPRO_WORKERS": "1",
             "IMGPRO_DATABASE_URL": db_url, "IMGPRO_RATE_LIMITS": "off",
             "IMGPRO_ACCESS_LOG": "false", "IMGPRO_METRICS_TOKEN": token,
             "IMGPRO_RECONCILE_SECONDS": "86400",
             "IMGPRO_ORPHAN_GRACE_SECONDS": str(TEN_YEARS)},
        ready_path="/healthz",
    )
    with start(spec, size_dir / "logs", timeout=300) as server:
        reconcile = _wait_for_reconcile(server, token, timeout=900)
        seen = "not seen" if reconcile is None else f"done in {reconcile:.1f} s"
        log(f"{backend} {rows:,}: start-up reconcile pass {seen}; measuring")
        explained: dict[str, Plan] = {}

        async def plans() -> dict[str, Plan]:
            db = Database(db_url, timeout=BULK_TIMEOUT)
            try:
                return await explain_reads(db, seed.team_id, cursors, int(time.time()))
            finally:
                await db.close()

        def explain_now() -> None:  # in the state the reads were timed in: before any write
            log(f"{backend} {rows:,}: EXPLAIN of the reads")
            explained.update(asyncio.run(plans()))

        ops, delete, checks = run_http(server, seed, requests=requests, warmup=warmup,
                                       cursors=cursors, batch_ids=batch_ids,
                                       removal_wait=removal_wait, db_url=db_url,
                                       budget=budget, log=log, after_reads=explain_now)
        server_log = server.log_tail(200_000)
    checks["server log has no traceback"] = "Traceback (most recent call last)" not in server_log

    result = SizeResult(
        backend=backend, rows=rows, seed_seconds=seed.seconds, seed_timings=seed.timings,
        database_bytes=database_bytes, reconcile_seconds=reconcile, load_before=load_before,
        load_after=os.getloadavg(), ops=ops, delete=delete, plans=explained,
        checks=checks, deep_page=deep_page, tag_counts=seed.tag_counts,
        namespace_rows=seed.namespace_counts.get(BIG_NAMESPACE, 0))
    log(f"{backend} {rows:,}: done; " + ", ".join(
        f"{op.key} p99 {op.p99:.1f}" for op in ops.values()))
    return result


# --- the report ---------------------------------------------------------------------------


def _power(rows: int) -> str:
    exponent = math.log10(rows) if rows > 0 else 0
    return f"10^{int(exponent)}" if exponent.is_integer() else f"{rows:,}"


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else (f"{value:.1f}" if value < 100 else f"{value:.0f}")


def _growth(results: dict[int, SizeResult], key: str, attr: str) -> float | None:
    big, small = results.get(10_000_000), results.get(1_000_000)
    if big is None or small is None or key not in big.ops or key not in small.ops:
        return None
    a, b = getattr(big.ops[key], attr), getattr(small.ops[key], attr)
    return a / b if b > 0 else None


def render_markdown(report: Report) -> str:
    out = [
        "<!-- written by bench/api_scale.py -->",
        f"Run of `{report.command}` started {report.started} on {report.machine}; "
        f"{report.requests} measured requests per operation after {report.warmup} warm-up "
        "requests, one at a time over one keep-alive connection, against one `imgpro serve` "
        "worker. Times in ms (p50 / p99, nearest rank).",
        "",
    ]
    for backend in ("postgresql", "sqlite"):
        by_size = {r.rows: r for r in report.results if r.backend == backend}
        if not by_size:
            continue
        sizes = sorted(by_size)
        out += [f"### {'PostgreSQL' if backend == 'postgresql' else 'SQLite'}", ""]
        head = ["operation"] + [f"{_power(n)} p50 / p99" for n in sizes]
        has_growth = 10_000_000 in by_size and 1_000_000 in by_size
        if has_growth:
            head += ["growth 10^7/10^6 (p50, p99)"]
        head += ["statuses"]
        out += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        keys = list(by_size[sizes[0]].ops)
        for key in keys:
            cells = [LABELS[key]]
            statuses: Counter[str] = Counter()
            for n in sizes:
                op = by_size[n].ops.get(key)
                if op is None:
                    cells.append("-")
                    continue
                statuses.update(op.statuses)
                cells.append(_ms(op.p50) if len(op.samples_ms) == 1
                             else f"{_ms(op.p50)} / {_ms(op.p99)}")
            if has_growth:
                g50, g99 = _growth(by_size, key, "p50"), _growth(by_size, key, "p99")
                cells.append("-" if g50 is None or g99 is None else f"{g50:.2f}x, {g99:.2f}x")
            cells.append(", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
            out.append("| " + " | ".join(cells) + " |")
        notes = [f"- {_power(n)} {op.label}: {op.note}" for n in sizes
                 for op in by_size[n].ops.values() if op.note and op.key != "namespace_delete"]
        out += ["", *notes, *([""] if notes else []), _details(by_size, sizes), ""]
        out += _targets(backend, by_size, sizes)
        out += _slow_plans(by_size, sizes)
    return "\n".join(out).rstrip() + "\n"


def _details(by_size: dict[int, SizeResult], sizes: list[int]) -> str:
    lines = ["| size | seed (load + indexes + analyze + recount) | database | start-up reconcile "
             "| namespace delete | originals removed by the sweeper | load avg before / after |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for n in sizes:
        r = by_size[n]
        t = r.seed_timings
        d = r.delete
        if not d.deleted or d.removal_pending is None:
            removal = "- (nothing deleted)"
        elif d.removal_seconds is not None:
            removal = f"{d.removal_seconds:.1f} s"
        else:
            removal = f"{d.removal_pending:,} left after {d.removal_wait:.0f} s"
        lines.append(
            f"| {_power(n)} | {r.seed_seconds:.1f} s ({t.get('load', 0):.1f} + "
            f"{t.get('indexes', 0):.1f} + {t.get('analyze', 0):.1f} + {t.get('recount', 0):.1f}) "
            f"| {r.database_bytes / 1e9:.2f} GB "
            f"| {'-' if r.reconcile_seconds is None else f'{r.reconcile_seconds:.1f} s'} "
            f"| {d.status}, deleted {d.deleted if d.deleted is not None else '-'} of "
            f"{d.expected:,} in {d.ms / 1000:.2f} s "
            f"| {removal} | {' '.join(f'{x:.1f}' for x in r.load_before)} / "
            f"{' '.join(f'{x:.1f}' for x in r.load_after)} |")
    return "\n".join(lines)


def _mark(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _targets(backend: str, by_size: dict[int, SizeResult], sizes: list[int]) -> list[str]:
    out = ["Targets of issue 12:", ""]
    reference = by_size.get(1_000_000)
    if reference is not None:
        slow = [f"{LABELS[k]} {reference.ops[k].p99:.1f} ms" for k in TARGET_OPS
                if reference.ops[k].p99 >= TARGET_P99_MS]
        out.append(f"- p99 < {TARGET_P99_MS:.0f} ms at 10^6 for every list filter, cursor page, "
                   f"namespaces and usage: {_mark(not slow)}"
                   + (f" (over: {'; '.join(slow)})" if slow else
                      f" (slowest: {max(reference.ops[k].p99 for k in TARGET_OPS):.1f} ms)"))
    if reference is not None and 10_000_000 in by_size:
        worse = []
        for key in TARGET_OPS:
            growth = _growth(by_size, key, "p99")
            if growth is not None and growth > TARGET_GROWTH:
                worse.append(f"{LABELS[key]} {growth:.2f}x")
        out.append(f"- at 10^7 no worse than {TARGET_GROWTH:.0f}x the 10^6 p99: {_mark(not worse)}"
                   + (f" (over: {'; '.join(worse)})" if worse else ""))
    errors = {n: by_size[n].server_errors for n in sizes}
    out.append(f"- no 5xx at any size: {_mark(not any(errors.values()))}"
               + (" (" + ", ".join(f"{_power(n)}: {e}" for n, e in errors.items() if e) + ")"
                  if any(errors.values()) else ""))
    for n in sizes:
        d = by_size[n].delete
        out.append(f"- {_power(n)}: namespace delete answers 200 with the exact count: "
                   f"{_mark(d.exact)} ({d.status}, `deleted: {d.deleted}` of {d.expected}); "
                   f"namespaces and usage reflect it at once: {_mark(d.reflected)} (namespace "
                   f"count {d.namespace_before} -> {d.namespace_after or 'gone'}, storage freed "
                   f"{d.storage_before - d.storage_after:,} of {d.expected_bytes:,} bytes, "
                   f"{d.listed_after} items listed after)")
    for n in sizes:
        scans = [LABELS[k] for k, p in by_size[n].plans.items() if p.full_scan]
        failed = [c for c, ok in by_size[n].checks.items() if not ok]
        out.append(f"- {_power(n)}: no full scan of media/media_tags in the plans of the reads: "
                   f"{_mark(not scans)}" + (f" ({', '.join(scans)})" if scans else "")
                   + (f"; failed checks: {', '.join(failed)}" if failed else ""))
    return out + [""]


def _slow_plans(by_size: dict[int, SizeResult], sizes: list[int]) -> list[str]:
    out: list[str] = []
    for n in sizes:
        for key in TARGET_OPS:
            op, plan = by_size[n].ops.get(key), by_size[n].plans.get(key)
            if op is None or plan is None:
                continue
            if op.p99 >= TARGET_P99_MS or plan.full_scan:
                if not out:
                    out += ["Plans of the reads that missed the target or scan a table "
                            "(the statements the route runs, EXPLAINed after the timed run):", ""]
                out += [f"<details><summary>{_power(n)}: {LABELS[key]} (p99 {op.p99:.1f} ms)"
                        "</summary>", "", "```", plan.text, "```", "", "</details>", ""]
    return out


def report_json(report: Report) -> str:
    def default(value: object) -> object:
        raise TypeError(type(value))

    data = asdict(report)
    for size, result in zip(data["results"], report.results, strict=True):
        for key, op in result.ops.items():
            size["ops"][key]["p50"] = op.p50
            size["ops"][key]["p99"] = op.p99
        size["delete"]["exact"] = result.delete.exact
        size["delete"]["reflected"] = result.delete.reflected
    return json.dumps(data, indent=1, default=default)


def load_report(text: str) -> Report:
    """A report back from ``report_json`` (``--from-json`` renders one again)."""
    data = json.loads(text)
    results = []
    for item in data.pop("results"):
        ops = {k: OpResult(v["key"], v["label"], v["samples_ms"], v["statuses"], v["note"])
               for k, v in item.pop("ops").items()}
        delete = {k: v for k, v in item.pop("delete").items()
                  if k not in ("exact", "reflected")}
        plans = {k: Plan(k, v["text"], full_scan(v["text"]))
                 for k, v in item.pop("plans").items()}
        item["load_before"], item["load_after"] = (tuple(item["load_before"]),
                                                   tuple(item["load_after"]))
        results.append(SizeResult(**item, ops=ops, delete=DeleteCheck(**delete), plans=plans))
    return Report(**data, results=results)


def run(backends: list[str], sizes: list[int], *, requests: int = 200, warmup: int = 10,
        pg_url: str = DEFAULT_PG_URL, work_dir: Path | None = None, removal_wait: float = 300,
        budget: float = DEFAULT_BUDGET,
        command: str = "python -m bench.api_scale",
        log: Callable[[str], None] = print,
        on_result: Callable[[Report], None] | None = None) -> Report:
    """Every size on every backend; ``on_result`` sees the report after each (a long run
    that is stopped keeps what it measured)."""
    report = Report(started=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), command=command,
                    machine=_machine(), requests=requests, warmup=warmup)
    work_dir = Path(work_dir or tempfile.gettempdir())
    for backend in backends:
        for rows in sizes:
            if backend == "sqlite" and rows > SQLITE_MAX_ROWS:
                continue
            report.results.append(run_size(backend, rows, requests=requests, warmup=warmup,
                                           pg_url=pg_url, work_dir=work_dir,
                                           removal_wait=removal_wait, budget=budget,
                                           log=log))
            if on_result is not None:
                on_result(report)
    return report


def _machine() -> str:
    cpus = os.cpu_count()
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        memory = 0.0
    return (f"{platform.system()} {platform.machine()}, {cpus} cores, {memory:.0f} GB RAM, "
            f"Python {platform.python_version()}")


def _sizes(text: str) -> list[int]:
    return [int(float(part)) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--sizes", type=_sizes, default=list(DEFAULT_SIZES),
                        help="rows per team, e.g. 1e5,1e6,1e7 (SQLite stops at 1e6)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL,
                        help="a PostgreSQL URL whose user may CREATE and DROP DATABASE")
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--removal-wait", type=float, default=300,
                        help="seconds to wait for the sweeper to remove the deleted originals")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET,
                        help="seconds of measured requests per operation before it stops early "
                             f"(after at least {MIN_SAMPLES})")
    parser.add_argument("--out", type=Path, default=None, help="write the markdown report here")
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="render the report of an earlier --json instead of running")
    args = parser.parse_args(argv)
    if args.from_json is not None:
        text = render_markdown(load_report(args.from_json.read_text()))
        if args.out is not None:
            args.out.write_text(text)
        print(text)
        return
    command = "python -m bench.api_scale " + " ".join(argv if argv is not None else sys.argv[1:])

    def write(report: Report) -> None:
        if args.json is not None:
            args.json.write_text(report_json(report))
        if args.out is not None:
            args.out.write_text(render_markdown(report))

    report = run([b.strip() for b in args.backends.split(",") if b.strip()], args.sizes,
                 requests=args.requests, warmup=args.warmup, pg_url=args.pg_url,
                 work_dir=args.work_dir, removal_wait=args.removal_wait, budget=args.budget,
                 command=command.strip(), log=lambda m: print(m, flush=True),
                 on_result=write)
    print(render_markdown(report))


if __name__ == "__main__":
    main()
