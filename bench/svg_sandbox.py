"""The fixed cost of running librsvg in a child process (``transformer._svg_sandbox``).

    python bench/svg_sandbox.py [--runs 10]

Probes and renders (640x320) a one-rect 1000x500 SVG, in-process with libvips as the library
did before the sandbox and through the child, and prints the median wall time of each. The
difference is what every SVG upload (probe) and every SVG rendition (render) now pays. Light:
~2 s of one core at the default 10 runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyvips

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from transformer._deadline import Deadline  # noqa: E402
from transformer._engine import ensure_initialised  # noqa: E402
from transformer._svg_sandbox import probe_svg, render_svg  # noqa: E402

SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" width="1000" height="500">'
       b'<rect width="100%" height="100%" fill="#dc1414"/></svg>')


def median_ms(work: Callable[[], object], runs: int) -> float:
    work()  # warm-up: first libvips use, page cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    ensure_initialised()
    cases = {
        "probe in-process": lambda: pyvips.Image.new_from_buffer(SVG, "", access="sequential")
        .hasalpha(),
        "probe child": lambda: probe_svg(SVG),
        "render 640x320 in-process": lambda: pyvips.Image.thumbnail_buffer(
            SVG, 640, height=320, size="force", option_string="fail_on=error").write_to_memory(),
        "render 640x320 child": lambda: render_svg(SVG, 640, 320, Deadline(30))
        .write_to_memory(),
    }
    for name, work in cases.items():
        print(f"{name:28s} median of {runs}: {median_ms(work, runs):6.1f} ms")


if __name__ == "__main__":
    main()
