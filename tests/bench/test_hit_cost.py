"""bench/hit_cost.py keeps working: it drives the real app and reports a positive cost."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT, CorpusImage


@pytest.mark.parametrize("through", ["asgi", "protocol"])
def test_hit_cost_reports_microseconds_per_hit(corpus: list[CorpusImage], through: str) -> None:
    photo = next(c for c in corpus if c.format == "jpeg").path
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "hit_cost.py"), "--hits", "200",
                           "--photo", str(photo), "--through", through],
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "IMGPRO_ACCESS_LOG": "false"})
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(rf"^([0-9.]+) us of our code per memory hit through {through} \(200 hits\)$",
                      done.stdout, re.M)
    assert found is not None, done.stdout
    assert float(found.group(1)) > 0
