"""RSS is summed over the whole process tree, as servers with forked workers need."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.process_memory import RssSampler, tree_rss

# A parent whose child touches 80 MB: only a tree-wide sum sees it.
CHILD = "import time; block = bytearray(80 * 2**20); block[::4096] = b'x' * 20480; time.sleep(30)"
PARENT = (
    "import subprocess, sys, time; "
    f"p = subprocess.Popen([sys.executable, '-c', {CHILD!r}]); time.sleep(30)"
)


def test_tree_rss_includes_grandchildren_and_sampler_sees_the_peak() -> None:
    proc = subprocess.Popen([sys.executable, "-c", PARENT])
    try:
        own = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            own = tree_rss(proc.pid)
            if own > 80 * 2**20:
                break
            time.sleep(0.1)
        assert own > 80 * 2**20
        with RssSampler(proc.pid, interval=0.05) as rss:
            time.sleep(0.3)
        assert len(rss.samples) >= 3
        assert rss.peak >= 80 * 2**20
    finally:
        import psutil

        children = psutil.Process(proc.pid).children(recursive=True)
        proc.kill()
        proc.wait()
        for child in children:
            child.kill()
            child.wait()
    assert tree_rss(proc.pid) == 0
