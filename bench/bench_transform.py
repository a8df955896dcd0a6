"""pytest-benchmark suite for ``transformer.transform`` over the corpus, per size and format.

    python -m pytest bench/bench_transform.py --benchmark-enable
    python -m pytest bench/bench_transform.py --benchmark-enable -k "m-webp" \
        --benchmark-json out.json

One round transforms every corpus image once (originals already in memory), so the reported
time divided by the number of images is the mean cost of one rendition on one thread. The
default ``pytest`` run collects only ``tests/`` and never runs this file; run without
``--benchmark-enable`` it is a quick smoke test (one round each).
"""

from __future__ import annotations

import csv

import pytest

from bench.corpus import corpus_dir
from transformer import FORMATS, SIZES, Format, Size, configure, transform

CORPUS = corpus_dir()


def _corpus() -> list[bytes]:
    with (CORPUS / "MANIFEST.tsv").open() as fh:
        return [(CORPUS / row["file"]).read_bytes()
                for row in csv.DictReader(fh, delimiter="\t")]


ORIGINALS = _corpus()


@pytest.fixture(scope="module", autouse=True)
def one_libvips_thread() -> None:
    configure(vips_threads=1)


@pytest.mark.skipif(not ORIGINALS, reason=f"corpus not found at {CORPUS}")
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("size", SIZES)
def test_transform_corpus(benchmark, size: Size, fmt: Format) -> None:
    benchmark.group = f"{size} {fmt}"
    benchmark.extra_info["images"] = len(ORIGINALS)

    def run() -> int:
        return sum(len(transform(data, size, fmt).data) for data in ORIGINALS)

    total_bytes = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=0)
    benchmark.extra_info["mean_bytes"] = total_bytes / len(ORIGINALS)
    assert total_bytes > 0
