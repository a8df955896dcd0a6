"""bench.miss_cost's parts: variants as written on the command line, counters of a tree."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from bench.miss_cost import TreeCounters, parse_variant


def test_variant_names_its_environment() -> None:
    assert parse_variant("pad=MALLOC_TOP_PAD_=131072,MALLOC_ARENA_MAX=1") == (
        "pad", {"MALLOC_TOP_PAD_": "131072", "MALLOC_ARENA_MAX": "1"})
    with pytest.raises(argparse.ArgumentTypeError):
        parse_variant("no-environment")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_counters_include_children() -> None:
    alone = TreeCounters.of(os.getpid())
    # A child that touches 64 MB: its faults and CPU count towards this tree while it lives.
    program = ("import sys; b = bytearray(64 << 20); b[::4096] = b'x' * 16384;"
               " sys.stdout.write('ready\\n'); sys.stdout.flush(); sys.stdin.read()")
    child = subprocess.Popen([sys.executable, "-c", program],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        with_child = TreeCounters.of(os.getpid())
    finally:
        child.communicate("")
    assert with_child.page_faults - alone.page_faults > 16_000 * 0.9
    assert with_child.cpu_seconds > alone.cpu_seconds
