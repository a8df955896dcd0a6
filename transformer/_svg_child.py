"""The child side of the SVG sandbox: librsvg runs here, never in a server process.

Started by ``transformer._svg_sandbox`` as ``python -I _svg_child.py OP MEMORY CPU [W H]``
with the SVG on stdin. It caps its own address space (``RLIMIT_AS``) and CPU seconds
(``RLIMIT_CPU``, a backstop should the parent die) before it reads a byte of the SVG, allows
libvips no loader but ``svgload``, and writes to stdout one JSON line followed, for a render,
by the raw pixels:

    probe   {"width": 1000, "height": 500, "has_alpha": true}
    render  {"width": 640, "height": 320, "bands": 4, "format": "uchar",
             "interpretation": "srgb"}  + width*height*bands bytes
    either  {"error": "unreadable", "detail": "libvips' message"}  or  {"error": "memory"}
            (and exit status 1)

Deliberately self-contained (stdlib and pyvips only, run by path in isolated mode): the
child starts without importing the ``transformer`` package, its Pillow and its HEIF plugin.
"""

from __future__ import annotations

import json
import resource
import sys

SVG_LOAD_OPTIONS = "fail_on=error,unlimited=false"
"""libvips' defaults, spelled out: a cut file is an error, and librsvg keeps its limits on
XML size and nesting (``unlimited`` would lift them). librsvg never fetches http(s) or
file references of an SVG loaded from memory (no base URL)."""


def limit_self(memory_bytes: int, cpu_seconds: int) -> None:
    """Cap this process before it touches any untrusted byte."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash leaves no core file behind
    if cpu_seconds > 0:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))


def configure_vips() -> None:
    """The server's libvips set-up, narrowed to SVG: no cache, one thread, svgload only."""
    import pyvips

    pyvips.cache_set_max(0)
    pyvips.cache_set_max_mem(0)
    pyvips.cache_set_max_files(0)
    pyvips.concurrency_set(1)
    pyvips.operation_block_set("VipsForeignLoad", True)
    pyvips.operation_block_set("VipsForeignLoadSvgBuffer", False)


def probe(data: bytes) -> dict[str, object]:
    import pyvips

    image = pyvips.Image.new_from_buffer(data, SVG_LOAD_OPTIONS, access="sequential")
    return {"width": image.width, "height": image.height, "has_alpha": bool(image.hasalpha())}


def render(data: bytes, width: int, height: int) -> tuple[dict[str, object], bytes]:
    import pyvips

    # The same call the pipeline makes for every libvips input: thumbnail renders the vector
    # at the scale that gives the target size (no raster of the declared size in between).
    image = pyvips.Image.thumbnail_buffer(data, width, height=height, size="force",
                                          option_string=SVG_LOAD_OPTIONS)
    pixels = image.write_to_memory()
    header = {"width": image.width, "height": image.height, "bands": image.bands,
              "format": image.format, "interpretation": image.interpretation}
    return header, pixels


def main(argv: list[str]) -> int:
    operation, memory, cpu = argv[0], int(argv[1]), int(argv[2])
    limit_self(memory, cpu)
    out = sys.stdout.buffer
    try:
        configure_vips()
        data = sys.stdin.buffer.read()
        if operation == "probe":
            out.write(json.dumps(probe(data)).encode() + b"\n")
        elif operation == "render":
            header, pixels = render(data, int(argv[3]), int(argv[4]))
            out.write(json.dumps(header).encode() + b"\n")
            out.write(pixels)
        else:
            raise ValueError(f"unknown operation {operation!r}")
    except MemoryError:
        out.write(json.dumps({"error": "memory"}).encode() + b"\n")
        return 1
    except Exception as exc:  # pyvips.Error and anything else: reported, never a traceback
        detail = " ".join(str(getattr(exc, "detail", "") or exc).split())[:500]
        out.write(json.dumps({"error": "unreadable", "detail": detail}).encode() + b"\n")
        return 1
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
