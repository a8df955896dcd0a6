"""Process-wide libvips set-up: done once, before the first image is touched.

- The operation cache is off. It exists for interactive programs that repeat the same
  operations; in a server every request is a different image, so the cache only holds memory
  and file references (libvips' own checklist says to turn it off in servers).
- Only the loaders for the formats we accept are allowed. We sniff the type ourselves before
  calling libvips, but libvips picks its loader by its own rules; the allow-list makes sure a
  crafted buffer can never reach a loader we did not mean to expose (matrix, CSV, FITS, ...).
- Originals are read where they lie (``load_from_memory``, ``thumbnail_from_memory``): pyvips'
  buffer calls copy the whole original before libvips sees it.
- ``configure`` sets libvips' own worker threads per operation. The server calls it once at
  start-up; the library's default is 1 (see README, "Encoder settings and how they were
  chosen", for the measurement behind it).
"""

from __future__ import annotations

import mmap
import threading
from typing import Any

import pyvips

ALLOWED_LOADERS: tuple[str, ...] = (
    "jpegload", "pngload", "gifload", "webpload", "tiffload", "heifload", "svgload",
)
"""libvips loader nicknames we use; everything else under VipsForeignLoad is blocked."""

DEFAULT_VIPS_THREADS = 1
"""libvips threads per operation; parallelism comes from one Python thread per core."""

Memory = bytes | bytearray | memoryview | mmap.mmap
"""What libvips can read in place: anything with the buffer protocol."""

_lock = threading.Lock()
_initialised = False


def ensure_initialised() -> None:
    """Apply the process-wide settings above exactly once (idempotent, thread-safe)."""
    global _initialised
    if _initialised:
        return
    with _lock:
        if _initialised:
            return
        pyvips.cache_set_max(0)
        pyvips.cache_set_max_mem(0)
        pyvips.cache_set_max_files(0)
        pyvips.operation_block_set("VipsForeignLoad", True)
        for nickname in ALLOWED_LOADERS:
            # From a buffer (transform, probe) and from a file descriptor (probe_file).
            for variant in ("buffer", "source"):
                gtype = pyvips.type_find("VipsForeignLoad", f"{nickname}_{variant}")
                pyvips.operation_block_set(pyvips.type_name(gtype), False)
        pyvips.concurrency_set(DEFAULT_VIPS_THREADS)
        _initialised = True


def load_from_memory(data: Memory, options: str = "", **kwargs: Any) -> pyvips.Image:
    """``Image.new_from_source`` over ``data`` read where it lies (see ``thumbnail_from_memory``).

    pyvips' ``new_from_source`` keeps the source, and the source keeps ``data``, alive for as
    long as the image and every image made from it.
    """
    return pyvips.Image.new_from_source(pyvips.Source.new_from_memory(data), options, **kwargs)


def thumbnail_from_memory(data: Memory, width: int, **kwargs: Any) -> pyvips.Image:
    """``Image.thumbnail_source`` over ``data`` read where it lies.

    Why not ``new_from_buffer``/``thumbnail_buffer``: pyvips hands a buffer to libvips as a
    blob, which it copies whole first, so every load held the original twice (README, "Memory
    sizing", has the figure and the test that measures it).

    pyvips does not keep the source of a ``thumbnail_source`` alive (its ``new_from_source``
    does): the image is given the source as a reference here, the way pyvips does it itself,
    so that ``data`` lives as long as the image and every image made from it. Without it a
    caller dropping ``data`` early made libvips read freed memory. That attribute is pyvips'
    internals: the pin in pyproject.toml and ``tests/transformer/test_memory_source.py`` fence it.
    """
    source = pyvips.Source.new_from_memory(data)
    image = pyvips.Image.thumbnail_source(source, width, **kwargs)
    image._references.append(source)
    return image


def configure(vips_threads: int = DEFAULT_VIPS_THREADS) -> None:
    """Set libvips' worker threads per operation (``vips_concurrency_set``).

    Call once at start-up, before transforms run: the value is process-wide. With a pool of
    one Python thread per core, 1 gives the best throughput; more only helps a single
    transform's latency on an otherwise idle machine.
    """
    if vips_threads < 1:
        raise ValueError(f"vips_threads must be >= 1, got {vips_threads}")
    ensure_initialised()
    pyvips.concurrency_set(vips_threads)
