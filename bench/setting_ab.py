"""Two encoder settings of one format side by side: bytes, SSIMULACRA2 and CPU per rendition.

    python -m bench.setting_ab avif fast --against 'libvips 77 effort=0 subsample_mode=off'

A quick check for changing one setting, where ``bench.quality``'s full sweep (an hour on 2 cores)
is more than the question needs: every corpus photo is rendered by ``transformer.transform`` at
each size with the library's own setting and with the candidate (the same pipeline, only the
encoder setting swapped), scored against the full-resolution reference of ``bench.quality``
(``bench.quality_metrics``), and timed in CPU seconds of this process (libvips at one thread).
It compares at one q each, so it answers "same score, what bytes and CPU?" only when the two
scores come out close; otherwise sweep with ``bench.quality``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import transformer
from bench import quality_metrics
from bench.corpus import corpus_dir
from bench.workloads import load_photos
from transformer import _encoder_settings
from transformer._encoder_settings import EFFORTS, EncoderSetting, encoder_setting


def parse_setting(text: str) -> EncoderSetting:
    """``"libvips 78 effort=0 subsample_mode=on"``: encoder, quality, then saver options."""
    encoder, quality, *options = text.split()
    parsed: dict[str, Any] = {}
    for option in options:
        name, value = option.split("=", 1)
        parsed[name] = int(value) if value.lstrip("-").isdigit() else value
    if encoder != "libvips":
        raise ValueError("only libvips settings can be given as a candidate")
    return EncoderSetting("libvips", int(quality), parsed)


def label(setting: EncoderSetting) -> str:
    options = " ".join(f"{name}={value}" for name, value in setting.options.items())
    return f"{setting.encoder} q{setting.quality} {options}".strip()


def measure(fmt: str, effort: str, settings: dict[str, EncoderSetting], sizes: Sequence[str],
            corpus: Path, photos: int | None = None) -> list[str]:
    """One markdown row per size and setting: mean bytes, the ratio of those to the first
    setting's, mean SSIMULACRA2, mean CPU ms; over the first ``photos`` photos (all: None)."""
    transformer.configure()
    key = (fmt, effort)
    original = _encoder_settings.SETTINGS[key]
    rows: dict[tuple[str, str], list[tuple[int, float, float]]] = {
        (size, name): [] for size in sizes for name in settings}
    try:
        for photo in load_photos(corpus)[:photos]:
            data = photo.path.read_bytes()
            full = quality_metrics.full_resolution(data)  # decoded once for every size
            for size in sizes:
                reference = None
                for name, setting in settings.items():
                    _encoder_settings.SETTINGS[key] = setting
                    started = time.process_time()
                    rendition = transformer.transform(data, size, fmt, effort=effort)  # type: ignore[arg-type]
                    cpu = time.process_time() - started
                    if reference is None:
                        reference = quality_metrics.Ssimulacra2Reference(
                            quality_metrics.reference_at(full, rendition.width, rendition.height))
                    score = reference.score(quality_metrics.decoded(rendition.data))
                    rows[(size, name)].append((len(rendition.data), score, cpu))
    finally:
        _encoder_settings.SETTINGS[key] = original
    lines = []
    for size in sizes:
        base = statistics.fmean(b for b, _, _ in rows[(size, next(iter(settings)))])
        for name in settings:
            values = rows[(size, name)]
            mean_bytes = statistics.fmean(b for b, _, _ in values)
            lines.append(
                f"| {size} | {name} | {mean_bytes:,.0f} | {mean_bytes / base:.3f} | "
                f"{statistics.fmean(s for _, s, _ in values):.2f} | "
                f"{1000 * statistics.fmean(c for _, _, c in values):.0f} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.setting_ab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("format", choices=transformer.FORMATS)
    parser.add_argument("effort", choices=EFFORTS)
    parser.add_argument("--against", required=True, type=parse_setting,
                        help="the candidate: 'libvips Q option=value ...'")
    parser.add_argument("--sizes", default="m,l", help="comma-separated (default m,l)")
    parser.add_argument("--corpus", type=Path, default=None)
    args = parser.parse_args(argv)
    ours = encoder_setting(args.format, args.effort)
    settings = {f"ours: {label(ours)}": ours, f"candidate: {label(args.against)}": args.against}
    print("| size | setting | mean bytes | vs first | mean SSIMULACRA2 | CPU ms |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for line in measure(args.format, args.effort, settings, args.sizes.split(","),
                        corpus_dir(args.corpus)):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
