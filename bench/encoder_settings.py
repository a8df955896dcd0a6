"""Measure encoder settings: bytes vs CPU time vs quality, over the corpus, at quality 80.

    python bench/encoder_settings.py                       # every format, sizes m (l for AVIF)
    python bench/encoder_settings.py --formats webp --repeat 3 --markdown out.md
    python bench/encoder_settings.py --threads-only        # libvips threads per operation

For each corpus image the rendition pixels are computed once (libvips thumbnail, sRGB, alpha
flattened on white for JPEG) and kept in memory; then every candidate setting encodes them
``--repeat`` times. Reported per candidate, averaged over the corpus:

- bytes: mean encoded size, and its ratio to the format's reference (the defaults of sharp,
  which ipx uses: JPEG q80 4:2:0 optimise_coding, WebP q80 effort 4, AVIF q80 effort 4 (libvips'
  default), PNG compression 6);
- encode ms: CPU time (process time, libvips at one thread) of the fastest repeat;
- SSIM and PSNR of the decoded result against the unencoded rendition, on luma (Rec. 601 Y),
  SSIM with the usual 11-tap Gaussian window (sigma 1.5), C1=(0.01*255)^2, C2=(0.03*255)^2.

The second table times whole transforms (``transformer.transform``) on a pool of one Python
thread per core, with libvips at 1, 2 and 4 threads per operation: the basis of
``transformer.configure``'s default.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyvips

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from bench.corpus import corpus_dir  # noqa: E402
from bench.ssim_formula import ssim_map  # noqa: E402
from transformer import SAVE_SUFFIX, configure, encoder_options, transform  # noqa: E402
from transformer._sizing import target_dimensions  # noqa: E402

Candidate = tuple[str, dict[str, Any]]

NONE = pyvips.ForeignKeep.NONE
JPEG_BASE = {"Q": 80, "optimize_coding": True, "subsample_mode": "on", "keep": NONE}
CANDIDATES: dict[str, list[Candidate]] = {
    "jpeg": [
        ("sharp/ipx default (reference)", JPEG_BASE),
        ("libvips default (no optimize_coding)", {**JPEG_BASE, "optimize_coding": False}),
        ("+ trellis_quant", {**JPEG_BASE, "trellis_quant": True}),
        ("+ trellis + overshoot_deringing",
         {**JPEG_BASE, "trellis_quant": True, "overshoot_deringing": True}),
        ("+ progressive (interlace)", {**JPEG_BASE, "interlace": True}),
        ("+ progressive + optimize_scans",
         {**JPEG_BASE, "interlace": True, "optimize_scans": True}),
        ("+ trellis + progressive + optimize_scans",
         {**JPEG_BASE, "trellis_quant": True, "interlace": True, "optimize_scans": True}),
        ("quant_table 3 (ImageMagick)", {**JPEG_BASE, "quant_table": 3}),
        ("quant_table 3 + trellis", {**JPEG_BASE, "quant_table": 3, "trellis_quant": True}),
        ("subsample_mode auto (libvips default)", {**JPEG_BASE, "subsample_mode": "auto"}),
    ],
    "webp": [
        *[(f"effort {e}" + (" (reference)" if e == 4 else ""),
           {"Q": 80, "effort": e, "keep": NONE}) for e in range(7)],
        *[(f"effort {e} + smart_subsample",
           {"Q": 80, "effort": e, "smart_subsample": True, "keep": NONE}) for e in (1, 2, 4)],
    ],
    "avif": [
        *[(f"effort {e}" + (" (reference)" if e == 4 else ""),
           {"Q": 80, "effort": e, "subsample_mode": "on", "keep": NONE}) for e in range(5)],
        ("effort 0, 4:4:4", {"Q": 80, "effort": 0, "subsample_mode": "off", "keep": NONE}),
    ],
    "png": [
        *[(f"compression {c}" + (" (reference)" if c == 6 else ""),
           {"compression": c, "keep": NONE}) for c in (1, 3, 6, 9)],
        ("palette (lossy, libimagequant)", {"compression": 6, "palette": True, "keep": NONE}),
    ],
}
DEFAULT_SIZES = {"jpeg": "m", "webp": "m", "avif": "l", "png": "m"}


@dataclass
class Row:
    fmt: str
    name: str
    bytes: float
    ratio: float
    encode_ms: float
    ssim: float
    psnr: float
    chosen: bool


def load_corpus(folder: Path, limit: int | None) -> list[tuple[str, bytes]]:
    with (folder / "MANIFEST.tsv").open() as fh:
        names = [row["file"] for row in csv.DictReader(fh, delimiter="\t")]
    return [(name, (folder / name).read_bytes()) for name in names[:limit]]


def rendition_pixels(data: bytes, size: str, fmt: str) -> pyvips.Image:
    """The pixels every candidate encodes: what ``transform`` hands to the saver (the corpus
    photos carry no ICC profile, so no colour conversion is needed)."""
    header = pyvips.Image.new_from_buffer(data, "")
    width, height = target_dimensions(header.width, header.height, size)  # type: ignore[arg-type]
    image = pyvips.Image.thumbnail_buffer(data, width, height=height, size="force")
    if fmt == "jpeg" and image.hasalpha():
        image = image.flatten(background=[255, 255, 255])
    return image.copy_memory()


def luma(image: pyvips.Image) -> pyvips.Image:
    if image.hasalpha():
        image = image.flatten(background=[255, 255, 255])
    if image.bands == 1:
        return image.cast("float")
    return image.colourspace("srgb").recomb([[0.299, 0.587, 0.114]]).cast("float")


def ssim(reference: pyvips.Image, test: pyvips.Image) -> float:
    x, y = luma(reference), luma(test)
    blur = pyvips.Image.gaussmat(1.5, 0.01, separable=True, precision="float")

    def mean(image: pyvips.Image) -> pyvips.Image:
        return image.convsep(blur, precision="float")

    return float(ssim_map(x, y, mean).avg())


def psnr(reference: pyvips.Image, test: pyvips.Image) -> float:
    mse = ((luma(reference) - luma(test)) ** 2).avg()
    return 99.0 if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def _encoder(image: pyvips.Image, suffix: str, options: dict[str, Any]) -> Callable[[], bytes]:
    return lambda: image.write_to_buffer(suffix, **options)


def cpu_seconds(fn: Callable[[], bytes], repeat: int) -> tuple[float, bytes]:
    best, out = float("inf"), b""
    for _ in range(repeat):
        start = time.process_time()
        out = fn()
        best = min(best, time.process_time() - start)
    return best, out


def measure_format(fmt: str, size: str, corpus: list[tuple[str, bytes]],
                   repeat: int) -> list[Row]:
    pixels = [rendition_pixels(data, size, fmt) for _, data in corpus]
    chosen = encoder_options(fmt)  # type: ignore[arg-type]
    results = []
    for name, options in CANDIDATES[fmt]:
        sizes, times, ssims, psnrs = [], [], [], []
        for image in pixels:
            seconds, data = cpu_seconds(_encoder(image, SAVE_SUFFIX[fmt], options),  # type: ignore[index]
                                        repeat)
            decoded = pyvips.Image.new_from_buffer(data, "")
            sizes.append(len(data))
            times.append(seconds)
            ssims.append(ssim(image, decoded))
            psnrs.append(psnr(image, decoded))
        results.append(Row(fmt, name, _mean(sizes), 0.0, 1000 * _mean(times), _mean(ssims),
                           _mean(psnrs), _same_options(options, chosen)))
    reference = next(r for r in results if "(reference)" in r.name)
    for row in results:
        row.ratio = row.bytes / reference.bytes
    return results


def measure_threads(corpus: list[tuple[str, bytes]], fmt: str, size: str, rounds: int,
                    thread_counts: Iterable[int]) -> list[tuple[int, float, float]]:
    """(vips threads, renditions per wall second, CPU seconds per rendition), per-core pool.

    On a machine shared with other work the wall-clock rate is noisy; CPU seconds per
    rendition is what bounds throughput once every core is busy (rate = cores / CPU s).
    """
    workers = os.cpu_count() or 1
    jobs = [data for _, data in corpus] * rounds
    rows = []
    for threads in thread_counts:
        configure(vips_threads=threads)
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda d: transform(d, size, fmt), jobs[:workers]))  # type: ignore[arg-type]
            start, cpu_start = time.perf_counter(), time.process_time()
            list(pool.map(lambda d: transform(d, size, fmt), jobs))  # type: ignore[arg-type]
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        rows.append((threads, len(jobs) / elapsed, cpu / len(jobs)))
    configure()
    return rows


def _same_options(a: dict[str, Any], b: dict[str, Any]) -> bool:
    defaults = {"optimize_coding": False, "trellis_quant": False, "overshoot_deringing": False,
                "optimize_scans": False, "interlace": False, "quant_table": 0,
                "smart_subsample": False, "palette": False, "subsample_mode": "auto"}
    return {**defaults, **a} == {**defaults, **b}


def _mean(values: list[float] | list[int]) -> float:
    return sum(values) / len(values)


def format_table(rows: list[Row], sizes: dict[str, str], corpus_len: int, repeat: int) -> str:
    lines = [f"Corpus: {corpus_len} images, quality 80, CPU ms = fastest of {repeat}, "
             "libvips 1 thread. `*` = the setting in transformer/_encoder_settings.py.", "",
             "| format (size) | setting | mean bytes | vs reference | encode ms | SSIM (Y) "
             "| PSNR dB |", "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        mark = " *" if row.chosen else ""
        lines.append(f"| {row.fmt} ({sizes[row.fmt]}) | {row.name}{mark} | {row.bytes:,.0f} | "
                     f"{row.ratio:.3f} | {row.encode_ms:.1f} | {row.ssim:.4f} | {row.psnr:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=None,
                        help="photos + MANIFEST.tsv (default: IMGPRO_CORPUS, ../shared/corpus)")
    parser.add_argument("--formats", default="jpeg,webp,avif,png")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--images", type=int, default=None, help="first N corpus images only")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    parser.add_argument("--threads-only", action="store_true")
    parser.add_argument("--no-threads", action="store_true")
    parser.add_argument("--thread-rounds", type=int, default=2)
    parser.add_argument("--thread-counts", default="1,2,4",
                        help="libvips threads per op to try, in this order (repeats allowed)")
    args = parser.parse_args(argv)

    configure(vips_threads=1)
    corpus = load_corpus(corpus_dir(args.corpus), args.images)
    out: list[str] = []
    if not args.threads_only:
        rows: list[Row] = []
        for fmt in args.formats.split(","):
            rows += measure_format(fmt, DEFAULT_SIZES[fmt], corpus, args.repeat)
            print(format_table([r for r in rows if r.fmt == fmt], DEFAULT_SIZES,
                               len(corpus), args.repeat), flush=True)
        out.append(format_table(rows, DEFAULT_SIZES, len(corpus), args.repeat))
    if not args.no_threads:
        lines = [f"Whole transforms (m WebP) on a pool of {os.cpu_count()} Python threads:", "",
                 "| libvips threads per op | renditions/s (wall) | CPU s per rendition |",
                 "| ---: | ---: | ---: |"]
        counts = [int(n) for n in args.thread_counts.split(",")]
        for threads, rate, seconds in measure_threads(corpus, "webp", "m", args.thread_rounds,
                                                      counts):
            lines.append(f"| {threads} | {rate:.2f} | {seconds:.3f} |")
            print(lines[-1], flush=True)
        out.append("\n".join(lines))
    text = "\n\n".join(out)
    print("\n" + text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
