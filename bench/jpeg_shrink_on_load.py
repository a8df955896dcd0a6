"""What decoding JPEGs at a smaller scale costs in pixels and saves in CPU, over the corpus.

    python bench/jpeg_shrink_on_load.py [--corpus DIR]    # default: IMGPRO_CORPUS

For each corpus JPEG and size it renders the short-edge target three ways: a full-resolution
decode + lanczos3 (the reference), libvips' ``thumbnail_buffer`` (keeps a factor of two for the
final reduce), and ours (``transformer._sizing.jpeg_shrink_on_load``: the largest 1/2, 1/4, 1/8
scale that stays at or above the target, like sharp's ``fastShrinkOnLoad``). It prints the
PSNR of both against the reference and the mean CPU per rendition of both.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pyvips

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import corpus_dir  # noqa: E402
from transformer._sizing import jpeg_shrink_on_load, target_dimensions  # noqa: E402
from transformer._types import SIZES  # noqa: E402


def psnr(a: pyvips.Image, b: pyvips.Image) -> float:
    mse = ((a.cast("float") - b.cast("float")) ** 2).avg()
    return 10 * math.log10(255**2 / mse) if mse else float("inf")


def libvips_default(data: bytes, width: int, height: int) -> pyvips.Image:
    return pyvips.Image.thumbnail_buffer(data, width, height=height, size="force")


def ours(data: bytes, width: int, height: int, factor: int) -> pyvips.Image:
    loaded = pyvips.Image.new_from_buffer(data, "", shrink=factor, access="sequential")
    return loaded.thumbnail_image(width, height=height, size="force")


def cpu_ms(build: Callable[[], pyvips.Image], repeat: int = 3) -> float:
    """CPU per rendition; the pipeline is rebuilt each time (sequential images run once)."""
    start = time.process_time()
    for _ in range(repeat):
        build().write_to_memory()
    return (time.process_time() - start) / repeat * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=None,
                        help="photos + MANIFEST.tsv (default: IMGPRO_CORPUS, ../shared/corpus)")
    args = parser.parse_args()
    pyvips.cache_set_max(0)
    print("| image | size | scale | PSNR libvips default dB | PSNR ours dB | CPU default ms "
          "| CPU ours ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for path in sorted(corpus_dir(args.corpus).glob("*.jp*g")):
        data = path.read_bytes()
        full = pyvips.Image.new_from_buffer(data, "")
        for size in SIZES:
            width, height = target_dimensions(full.width, full.height, size)
            factor = jpeg_shrink_on_load(full.width, full.height, (width, height))
            reference = full.thumbnail_image(width, height=height, size="force")
            default = libvips_default(data, width, height)
            fast = ours(data, width, height, factor)
            print(f"| {path.name} | {size} | 1/{factor} | {psnr(reference, default):.1f} | "
                  f"{psnr(reference, fast):.1f} | "
                  f"{cpu_ms(partial(libvips_default, data, width, height)):.1f} | "
                  f"{cpu_ms(partial(ours, data, width, height, factor)):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
