"""``tune_malloc``: what a miss allocates and frees is reused instead of faulted in again.

Each case runs in a fresh interpreter, since mallopt changes the whole process. The load is a
miss's shape: many sub-megabyte buffers (libvips regions, codec rows) allocated together and
freed together, twice; the measure is the page faults of the second round.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")

PROGRAM = textwrap.dedent("""
    import resource, sys
    from api.serving.server import tune_malloc

    if sys.argv[1] == "tuned":
        tune_malloc()
    elif sys.argv[1] == "no-pad":
        tune_malloc(top_pad=128 * 1024)  # glibc's default pad

    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    def one_miss():
        buffers = [bytearray(512 * 1024) for _ in range(24)]  # 12 MB, under the 1 MB mmap cut
        for buffer in buffers:
            buffer[::4096] = b"x" * len(buffer[::4096])  # touched, as decoded pixels are
        del buffers

    one_miss()
    before = faults()
    for _ in range(5):
        one_miss()
    print(faults() - before)
""")


def later_faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=True)
    return int(done.stdout)


def test_top_pad_keeps_a_miss_worth_of_heap() -> None:
    pages = 5 * 24 * 128  # 4 KB pages the five later misses touch
    without_pad = later_faults("no-pad")
    assert without_pad > pages // 2, "glibc's default pad should give the heap top back"
    assert later_faults("tuned") < pages // 20
