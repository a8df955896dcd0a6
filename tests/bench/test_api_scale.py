"""bench/api_scale.py and bench/seed_media.py keep working: a tiny run on SQLite, end to end.

2,000 seeded media, a real server, a few requests per operation. Nothing here is timed: the
report's shape, every answer 2xx, the namespace delete's exact count and the checks the
benchmark makes along the way.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
from pathlib import Path

from api.db import Database
from bench import api_scale
from bench.seed_media import DELETE_NAMESPACE, NAMESPACES, TAGS, seed_media

ROWS = 2_000


def test_seed_media_fills_one_team_with_a_usable_key(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'imgpro.db'}"

    async def run() -> None:
        db = Database(url)
        try:
            await db.migrate()
        finally:
            await db.close()
        first = await seed_media(url, ROWS)
        again = await seed_media(url, ROWS)  # the same team, more rows, no id clash
        assert again.team_id == first.team_id and again.api_key != first.api_key
        assert again.first_seq == first.last_seq + 1
        assert first.delete_count == ROWS // 20 and first.delete_namespace == DELETE_NAMESPACE

    asyncio.run(run())
    conn = sqlite3.connect(tmp_path / "imgpro.db")
    try:
        ids = [r[0] for r in conn.execute("SELECT id FROM media")]
        assert len(ids) == len(set(ids)) == 2 * ROWS
        assert all(len(i) == 12 and i.isalnum() and i.isascii() for i in ids)
        namespaces = {r[0] for r in conn.execute("SELECT DISTINCT namespace FROM media")}
        assert namespaces <= {None, DELETE_NAMESPACE, *NAMESPACES} and None in namespaces
        assert len(namespaces) > 15
        per_media = dict(conn.execute("SELECT media_seq, count(*) FROM media_tags GROUP BY 1"))
        assert max(per_media.values()) <= 4
        assert {r[0] for r in conn.execute("SELECT DISTINCT tag FROM media_tags")} <= set(TAGS)
        # recount_team ran: the counters equal the rows
        stored = conn.execute("SELECT storage_bytes FROM teams WHERE hash != 'anon'").fetchone()
        assert stored[0] == conn.execute("SELECT sum(filesize) FROM media").fetchone()[0]
        totals = dict(conn.execute("SELECT namespace, media_count FROM namespace_totals"))
        counted = dict(conn.execute("SELECT namespace, count(*) FROM media "
                                    "WHERE namespace IS NOT NULL GROUP BY 1"))
        assert totals == counted
        assert totals[DELETE_NAMESPACE] == 2 * ROWS // 20
    finally:
        conn.close()


def test_a_tiny_run_reports_every_operation_with_2xx_answers(tmp_path: Path) -> None:
    logged: list[str] = []
    report = api_scale.run(["sqlite"], [ROWS], requests=3, warmup=1, work_dir=tmp_path,
                           removal_wait=60, log=logged.append)
    assert [(r.backend, r.rows) for r in report.results] == [("sqlite", ROWS)]
    result = report.results[0]
    assert list(result.ops) == [*(op.key for op in api_scale.READ_OPS), "cursor_2",
                                "cursor_deep", "namespaces", "usage", "upload", "batch_patch",
                                "namespace_delete"]
    for key, op in result.ops.items():
        expected = 1 if key == "namespace_delete" else 3
        assert len(op.samples_ms) == expected, key
        assert op.all_2xx, (key, op.statuses)
        assert not math.isnan(op.p50) and op.p50 <= op.p99
    assert result.server_errors == 0
    delete = result.delete
    assert delete.status == 200 and delete.deleted == delete.expected == ROWS // 20
    assert delete.exact and delete.reflected
    assert delete.removal_seconds is not None  # the sweeper removed them all
    assert all(result.checks.values()), result.checks
    assert set(result.plans) == {*api_scale.TARGET_OPS}
    assert not any(plan.full_scan for plan in result.plans.values()), result.plans
    assert not list(tmp_path.iterdir())  # the run's own directory is gone

    text = api_scale.render_markdown(report)
    assert "### SQLite" in text and "### PostgreSQL" not in text
    assert "| operation | 2,000 p50 / p99 | statuses |" in text
    for label in api_scale.LABELS.values():
        assert f"| {label} |" in text
    assert "namespace delete answers 200 with the exact count: met" in text
    assert "no 5xx at any size: met" in text
    again = api_scale.load_report(api_scale.report_json(report))  # --from-json renders it again
    assert api_scale.render_markdown(again) == text


def test_the_report_computes_growth_and_judges_the_targets() -> None:
    """The 10^7/10^6 column and the targets, on made-up figures (no server)."""

    def size(rows: int, ms: float) -> api_scale.SizeResult:
        ops = {key: api_scale.OpResult(key, api_scale.LABELS[key], [ms] * 10, {"200": 10})
               for key in api_scale.TARGET_OPS}
        delete = api_scale.DeleteCheck(200, 5.0, rows // 20, rows // 20, rows // 20, None,
                                       100, 40, 60, 0, 1.0, 0, 10)
        return api_scale.SizeResult("postgresql", rows, 1.0, {}, 0, 0.0, (0, 0, 0), (0, 0, 0),
                                    ops, delete, {}, {}, 1000, {}, 0)

    report = api_scale.Report("now", "cmd", "here", 10, 1,
                              [size(1_000_000, 10.0), size(10_000_000, 30.0)])
    text = api_scale.render_markdown(report)
    assert "growth 10^7/10^6 (p50, p99)" in text and "3.00x, 3.00x" in text
    assert "p99 < 50 ms at 10^6 for every list filter, cursor page, namespaces and usage: met" \
        in text
    assert "at 10^7 no worse than 2x the 10^6 p99: **not met**" in text

