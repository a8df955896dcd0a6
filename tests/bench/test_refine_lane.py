"""bench/refine_lane.py end to end, tiny: real servers, real wrk, a real drain of two renditions.

Only the report's shape and that its figures are real numbers are checked, never how fast
anything was: speed lives in the benchmark's own run (docs/bench-refine.md).
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
from pathlib import Path

import pytest

from bench.refine_lane import parse_args, render_report, run

pytestmark = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk not installed (apt-get install -y wrk)"
)


def test_a_tiny_run_reports_both_modes_and_a_complete_drain(corpus, tmp_path: Path) -> None:
    args = parse_args([
        "--corpus", str(corpus[0].path.parent), "--photos", "1", "--size", "s",
        "--workers", "1", "--connections", "2", "--duration", "1", "--order", "off,on",
        "--drain-count", "2", "--drain-connections", "2", "--settle", "0", "--poll", "0.1",
        "--out", str(tmp_path / "report.md"),
    ])
    report, photos = run(args, tmp_path / "run")

    assert [c.refine for c in report.cells] == ["off", "on"]
    for cell in report.cells:
        assert cell.ok > 0 and cell.failed == 0
        assert math.isfinite(cell.per_second) and cell.per_second > 0
        assert cell.hits == 0  # every request of the load was a miss
    assert report.cells[0].refined == report.cells[0].queued == 0  # refine off: no lane at all

    drain = report.drain
    assert drain is not None and drain.count == 2
    assert drain.provisional == 2  # each URL's first answer was a provisional miss
    assert drain.drained and drain.refined >= 2 and drain.final == 2  # then final on a GET
    assert math.isfinite(drain.drain_seconds) and drain.drain_seconds > 0
    assert drain.refine_seconds_mean > 0 and drain.final_bytes > 0

    text = render_report(report, "python -m bench.refine_lane ...", dt.datetime.now(dt.UTC),
                         "host", photos)
    assert "## (a) Cold misses under sustained load" in text and "## (b) Drain of 2" in text
    targets = text.split("## Targets (issue 11)")[1]
    assert targets.count("| PASS |") + targets.count("| FAIL |") == 2
