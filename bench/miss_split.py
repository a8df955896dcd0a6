"""Where one rendition's CPU goes, per corpus photo: the whole transform against its JPEG decode.

    python -m bench.miss_split                    # m JPEG at the fast effort (a CDN miss)
    python -m bench.miss_split --size l --fmt avif --effort fast

For every corpus photo it prints the CPU (all threads of this process, best of ``--repeat``) of
one ``transformer.transform``; for JPEG sources also that of the TurboJPEG decode at the scale
the transform uses, and of the same decode at 1/8, which is little more than the entropy
(Huffman) decoding every scale has to do, then of the two steps after the decode, each on the
previous step's pixels held in memory: libvips' reduce to the rendition's size and the encode
(``encode_image``, what ``transform`` writes). Whatever the whole transform costs beyond those
three is the pipeline's own (header, checks, copies). Everything after the entropy decode is the
part an origin's code can still change; the entropy decode is paid by every server that reads
the original, peers included.

``bench.miss_cost`` measures the same miss through the running server; the difference between
the two is the HTTP side of a miss.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pyvips
import simplejpeg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import corpus_dir  # noqa: E402
from bench.workloads import load_photos  # noqa: E402
from transformer import FORMATS, SIZES, Format, Size, configure, transform  # noqa: E402
from transformer._encoder_settings import EFFORTS, Effort, encoder_setting  # noqa: E402
from transformer._engine import load_from_memory  # noqa: E402
from transformer._pipeline import encode_image  # noqa: E402
from transformer._sizing import jpeg_shrink_on_load, target_dimensions  # noqa: E402
from transformer._turbojpeg import decode_scaled, decoded_size  # noqa: E402


def cpu_ms(run: Callable[[], object], repeat: int) -> float:
    """Fewest CPU milliseconds (process time: every thread, libvips' workers included)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best * 1000


def decode_ms(data: bytes, width: int, height: int, shrink: int, repeat: int) -> float:
    """CPU of TurboJPEG decoding ``data`` (``width`` x ``height``) at 1/``shrink`` into RGB."""
    out_width, out_height = decoded_size(width, height, shrink)
    return cpu_ms(partial(simplejpeg.decode_jpeg, data, "RGB", min_height=out_height,
                          min_width=out_width), repeat)


def after_decode_ms(data: bytes, width: int, height: int, shrink: int, size: Size,
                    fmt: Format, effort: Effort, repeat: int) -> tuple[float, float]:
    """CPU of the reduce (decoded pixels -> rendition size, libvips' thumbnail as the pipeline
    calls it) and of the encode of the reduced pixels, each measured on its input in memory.

    The decoded image is the pipeline's own (``decode_scaled``, or libvips' scaled load where
    that declines, as ``load_and_shrink`` falls back)."""
    decoded = decode_scaled(data, shrink, orientation=1, icc_profile=None)
    source = (decoded if decoded is not None
              else load_from_memory(data, shrink=shrink, access="sequential")).copy_memory()
    target_width, target_height = target_dimensions(width, height, size)

    def reduce() -> pyvips.Image:
        return source.thumbnail_image(target_width, height=target_height,
                                      size="force").copy_memory()

    reduce_cpu = cpu_ms(reduce, repeat)
    setting = encoder_setting(fmt, effort)
    encode_cpu = cpu_ms(partial(encode_image, reduce(), fmt, setting), repeat)
    return reduce_cpu, encode_cpu


def rows(corpus: Path, size: Size, fmt: Format, effort: Effort, repeat: int) -> list[list[str]]:
    """The table's cells: a row per photo in the manifest's order, then the means."""
    photos = load_photos(corpus)
    table: list[list[str]] = []
    whole_total = 0.0
    jpeg_whole = jpeg_scaled = jpeg_entropy = jpeg_reduce = jpeg_encode = 0.0
    jpegs = 0
    for photo in photos:
        data = photo.path.read_bytes()
        whole = cpu_ms(partial(transform, data, size, fmt, effort=effort), repeat)
        whole_total += whole
        cells = [photo.path.name, f"{whole:.1f}", "-", "-", "-", "-", "-"]
        if photo.format == "jpeg":
            height, width, _, _ = simplejpeg.decode_jpeg_header(data)  # stored, not displayed
            shrink = jpeg_shrink_on_load(width, height, target_dimensions(width, height, size),
                                         keep_detail=effort == "final")
            scaled = decode_ms(data, width, height, shrink, repeat)
            entropy = decode_ms(data, width, height, 8, repeat)
            reduce, encode = after_decode_ms(data, width, height, shrink, size, fmt, effort,
                                             repeat)
            jpegs += 1
            jpeg_whole += whole
            jpeg_scaled += scaled
            jpeg_entropy += entropy
            jpeg_reduce += reduce
            jpeg_encode += encode
            cells[2:] = [f"1/{shrink}: {scaled:.1f}", f"{entropy:.1f}", f"{scaled / whole:.0%}",
                         f"{reduce:.1f}", f"{encode:.1f}"]
        table.append(cells)
    table.append([f"mean over {len(photos)} photos", f"{whole_total / max(1, len(photos)):.1f}",
                  "-", "-", "-", "-", "-"])
    if jpegs:
        table.append([f"JPEG sources ({jpegs})", f"{jpeg_whole / jpegs:.1f}",
                      f"{jpeg_scaled / jpegs:.1f}", f"{jpeg_entropy / jpegs:.1f}",
                      f"{jpeg_scaled / jpeg_whole:.0%}", f"{jpeg_reduce / jpegs:.1f}",
                      f"{jpeg_encode / jpegs:.1f}"])
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="m")
    parser.add_argument("--fmt", choices=FORMATS, default="jpeg")
    parser.add_argument("--effort", choices=EFFORTS, default="fast")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--corpus", default=None,
                        help="photos + MANIFEST.tsv (default: IMGPRO_CORPUS, ../shared/corpus)")
    args = parser.parse_args(argv)
    configure(vips_threads=1)  # as the server: one libvips thread per transform thread
    print(f"{args.size} {args.fmt.upper()}, effort {args.effort}, CPU ms, best of {args.repeat}")
    print()
    print("| photo | whole transform | JPEG decode at its scale | decode at 1/8 (entropy) "
          "| decode / whole | reduce | encode |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for cells in rows(corpus_dir(args.corpus), args.size, args.fmt, args.effort, args.repeat):
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
