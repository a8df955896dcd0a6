"""The in-process limit must encode with the setting our server's miss uses, or "ours / limit"
compares fast provisional encodes with effort 6 WebP and effort 4 AVIF."""

from __future__ import annotations

import pytest

from bench.compare import limit_command, parse_args
from bench.inprocess_limit import measure, miss_effort
from bench.workloads import WORKLOADS, load_photos
from transformer import FORMATS
from transformer._encoder_settings import encoder_setting
from transformer.origin.app import PROVISIONAL_FORMATS


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_limit_uses_the_effort_of_our_miss(fmt: str) -> None:
    assert miss_effort(fmt) == ("fast" if fmt in PROVISIONAL_FORMATS else "final")  # type: ignore[arg-type]


def test_compare_runs_the_limit_at_the_miss_effort() -> None:
    args = parse_args(["--corpus", "/x"])
    for workload in (w for w in WORKLOADS if w.kind == "cold"):
        cmd = limit_command(args, workload, photos=12)
        assert cmd[cmd.index("--effort") + 1] == miss_effort(workload.fmt) == "fast"


def test_a_short_limit_run_reports_the_fast_setting(corpus) -> None:
    photos = load_photos(corpus[0].path.parent)[:1]
    result = measure(photos, "s", "webp", seconds=0.1, threads=1)
    fast = encoder_setting("webp", "fast")
    assert result["renditions"] >= 1 and result["mean_bytes"] > 0
    assert result["encoder"]["effort"] == "fast"
    assert result["encoder"]["quality"] == fast.quality
    assert result["encoder"]["options"] == {k: str(v) for k, v in fast.options.items()}
