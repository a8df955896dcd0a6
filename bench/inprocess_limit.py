"""The in-process libvips limit: what this machine can render with no HTTP, no cache, no server.

Originals are held in memory; a ThreadPoolExecutor with one thread per core runs pyvips
``thumbnail_buffer`` (shrink-on-load, short edge = target, never enlarge) then
``write_to_buffer`` with the encoder settings our server uses, for a fixed time. Its renditions
per second are the ceiling our server is compared with ("ours / in-process limit").

Run by ``bench/compare.py`` as a child process (``python -m bench.inprocess_limit ...``) so its
peak RSS is measured the same way as a server's and its libvips state is fresh; prints one JSON
line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyvips

import transformer
from bench.workloads import Photo, load_photos
from transformer import ENCODER_SETTINGS_VERSION, FORMATS, REFINABLE_FORMATS, SHORT_EDGE, Format
from transformer._encoder_settings import EFFORTS, Effort, EncoderSetting, encoder_setting
from transformer._pipeline import encode_image

ENCODER_SOURCE = f"transformer.encoder_setting (settings version {ENCODER_SETTINGS_VERSION})"
"""Where the encoder settings come from: the transformer's own, so the limit and our server encode
with exactly the same settings (and the same encoder: jpegli for JPEG)."""


def miss_effort(fmt: Format) -> Effort:
    """The effort our server encodes a miss of ``fmt`` with, so the limit does the same work.

    The origin answers a miss of a refinable format with the fast setting (provisional, refined
    later by the lane) and every other format with the final one, which is then the same
    (``transformer.origin.app.PROVISIONAL_FORMATS``, a test checks they agree). The library's
    own default is ``"final"``: measuring the limit at it would compare our fast misses with
    effort 6 WebP and effort 4 AVIF encodes, a ceiling several times too low.
    """
    return "fast" if fmt in REFINABLE_FORMATS else "final"


def render(data: bytes, photo: Photo, target: int, fmt: Format, setting: EncoderSetting) -> bytes:
    """One rendition: shrink-on-load to the short-edge target, then encode."""
    big = 10_000_000
    width, height = (big, target) if photo.landscape else (target, big)
    image = pyvips.Image.thumbnail_buffer(data, width, height=height, size="down")
    return encode_image(image, fmt, setting)


def measure(
    photos: list[Photo], size: str, fmt: Format, seconds: float, threads: int,
    effort: Effort | None = None,
) -> dict[str, Any]:
    """Keep ``threads`` workers rendering the rotation for ``seconds``; latencies per rendition.

    ``effort`` None: the one our server's miss uses (``miss_effort``)."""
    effort = effort or miss_effort(fmt)
    originals = [p.path.read_bytes() for p in photos]
    setting = encoder_setting(fmt, effort)
    target = SHORT_EDGE[size]  # type: ignore[index]
    sizes = [len(render(originals[i], p, target, fmt, setting)) for i, p in enumerate(photos)]

    lock = threading.Lock()
    counter = iter(range(10**12))
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    def worker() -> None:
        while time.monotonic() < deadline:
            with lock:
                i = next(counter) % len(photos)
            t0 = time.perf_counter()
            render(originals[i], photos[i], target, fmt, setting)
            elapsed = time.perf_counter() - t0
            with lock:
                latencies.append(elapsed)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(worker) for _ in range(threads)]:
            future.result()
    wall = time.monotonic() - started
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {
        "renditions": len(latencies),
        "seconds": wall,
        "per_second": len(latencies) / wall,
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
        "mean_bytes": statistics.fmean(sizes),
        "threads": threads,
        "vips_concurrency": pyvips.concurrency_get(),
        "encoder": {"source": ENCODER_SOURCE, "effort": effort, "encoder": setting.encoder,
                    "quality": setting.quality,
                    "options": {k: str(v) for k, v in setting.options.items()}},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--size", choices=sorted(SHORT_EDGE), required=True)
    parser.add_argument("--fmt", choices=FORMATS, required=True)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--photos", type=int, default=0, help="use only the first N photos (0 = all)"
    )
    parser.add_argument(
        "--vips-threads",
        type=int,
        default=None,
        help="libvips threads per operation (default: transformer.configure's, as the server)",
    )
    parser.add_argument(
        "--effort", choices=EFFORTS, default=None,
        help="encoder settings (default: the one our server's miss uses, fast for the formats "
        "the refine lane re-encodes)",
    )
    args = parser.parse_args(argv)
    # Same process-wide libvips set-up as the server: operation cache off, threads per operation.
    if args.vips_threads is None:
        transformer.configure()
    else:
        transformer.configure(args.vips_threads)
    photos = load_photos(args.corpus)
    if args.photos:
        photos = photos[: args.photos]
    result = measure(photos, args.size, args.fmt, args.seconds, args.threads, args.effort)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
