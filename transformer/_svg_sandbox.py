"""librsvg in a short-lived child process that can be killed: every SVG probe and render.

librsvg cannot be interrupted: libvips' kill flag (``transformer._deadline``) is checked
between tiles, and one tile of an SVG with a large blur filter is one librsvg call that ran
for minutes; and parsing memory grows with the document (an SVG under the upload limit took
hundreds of MB, which glibc then kept; docs/design.md). So librsvg never runs in a server
process. Each SVG operation starts ``transformer/_svg_child.py`` with the SVG on stdin, and:

- time: the child is killed (SIGKILL, then reaped) when the transform's deadline expires
  (``TransformTimeout``) or, for a probe, after ``SVG_PROBE_TIMEOUT`` (``UnsupportedImage``);
- memory: the child caps its own address space at ``SVG_CHILD_MEMORY`` before it reads the
  SVG; a render needing more fails in the child and is ``UnsupportedImage`` here, and the
  parent's RSS does not depend on how complex an SVG is (only on the raster it gets back,
  at most ``SVG_MAX_RASTER_PIXELS`` x 4 bytes);
- concurrency: at most ``MAX_SVG_CHILDREN`` children per process at once; the others wait
  for a slot within their deadline;
- isolation: ``sys.executable -I`` (no PYTHON* variables, no user site, no current
  directory on the path), a minimal environment, no inherited file descriptors, libvips with
  no loader but svgload and librsvg with its limits on (``_svg_child.SVG_LOAD_OPTIONS``).

The pixels come back raw (8-bit sRGBA from librsvg) and become a libvips image in memory; the
rest of the pipeline (colour, alpha, encode) is the same as for every other input.

The price is a child start per operation (``python bench/svg_sandbox.py`` measures it; README,
"Limits and errors", has the figures): mostly starting Python with its site-packages and
importing pyvips. An upload pays one probe; a rendition pays a probe and a render, once, since
renditions are cached.
"""

from __future__ import annotations

import json
import math
import os
import selectors
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pyvips

from transformer._deadline import Deadline
from transformer._errors import TransformTimeout, UnsupportedImage

MAX_SVG_CHILDREN = 2
"""SVG children alive at once per process; one more SVG waits for a slot (within its time)."""

SVG_CHILD_MEMORY = 1 << 30
"""Address-space limit of a child (1 GiB): room for the largest raster we allow
(``SVG_MAX_RASTER_PIXELS`` as RGBA), its rendering, and what Python, libvips and librsvg map."""

SVG_PROBE_TIMEOUT = 10.0
"""Seconds an SVG's header (librsvg parses the whole document) may take before it is refused."""

SVG_CHILD_ENVIRONMENT = {"LC_ALL": "C.UTF-8", "MALLOC_ARENA_MAX": "2", "RAYON_NUM_THREADS": "1"}
"""All the environment a child gets: no secrets, no VIPS_* or PYTHON* overrides. librsvg
blurs with a rayon pool of one thread per core unless told otherwise: one core per child, like
one libvips thread per transform."""

CPU_BACKSTOP_SECONDS = 5
"""CPU seconds a child may use beyond its deadline (``RLIMIT_CPU``): it only matters if this
process dies and cannot kill it."""

CHILD_SCRIPT = str(Path(__file__).with_name("_svg_child.py"))

_HEADER_LIMIT = 4096
_STDERR_LIMIT = 4096

_children = threading.BoundedSemaphore(MAX_SVG_CHILDREN)


@dataclass(frozen=True, slots=True)
class SvgHeader:
    width: int
    height: int
    has_alpha: bool


def probe_svg(data: bytes) -> SvgHeader:
    """Width, height and alpha of an SVG as librsvg reads them, parsed in a child."""
    deadline = Deadline(SVG_PROBE_TIMEOUT)
    try:
        header, _ = _run_child(["probe"], data, deadline, size=None)
    except TransformTimeout as exc:
        raise UnsupportedImage(f"the SVG image took longer than {SVG_PROBE_TIMEOUT:g} s to "
                               "read (too complex)") from exc
    except _ChildFailed as exc:
        raise UnsupportedImage(f"not a readable SVG image{exc.hint()}") from exc
    try:
        return SvgHeader(int(header["width"]), int(header["height"]), bool(header["has_alpha"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise UnsupportedImage("not a readable SVG image") from exc


def render_svg(data: bytes, width: int, height: int, deadline: Deadline) -> pyvips.Image:
    """The SVG rasterised at ``width`` x ``height`` in a child, as an in-memory libvips image.

    Raises ``TransformTimeout`` once ``deadline`` passes (waiting for a slot included) and
    ``UnsupportedImage`` if librsvg cannot render it within the child's limits.
    """
    try:
        header, pixels = _run_child(["render", str(width), str(height)], data, deadline,
                                    size=(width, height))
    except _ChildFailed as exc:
        raise UnsupportedImage(f"could not decode the SVG image{exc.hint()}") from exc
    assert pixels is not None
    image = pyvips.Image.new_from_memory(pixels, header["width"], header["height"],
                                         header["bands"], header["format"])
    return image.copy(interpretation=header["interpretation"])


class _ChildFailed(Exception):
    """The child refused the SVG (``detail``: libvips' message) or died (``memory``: maybe over
    its limit: librsvg and GLib abort when an allocation fails)."""

    def __init__(self, detail: str, *, memory: bool = False) -> None:
        super().__init__(detail)
        self.memory = memory

    def hint(self) -> str:
        if not self.memory:
            return ""
        return f" (it needs more than the {SVG_CHILD_MEMORY >> 20} MiB limit of SVG rendering)"


def _run_child(args: list[str], data: bytes, deadline: Deadline, *,
               size: tuple[int, int] | None) -> tuple[dict, bytearray | None]:
    """Run one child operation, killing it at the deadline: its JSON header, and the pixels
    of a ``size`` raster when one is asked for."""
    remaining = deadline.remaining()
    if not _children.acquire(timeout=remaining):
        raise deadline.timeout_error()
    try:
        remaining = deadline.remaining()
        cpu_limit = 0 if remaining is None else math.ceil(remaining) + CPU_BACKSTOP_SECONDS
        command = [sys.executable, "-I", CHILD_SCRIPT, args[0], str(SVG_CHILD_MEMORY),
                   str(cpu_limit), *args[1:]]
        with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=SVG_CHILD_ENVIRONMENT,
                              close_fds=True, cwd="/") as child:
            try:
                header, body = _exchange(child, data, deadline, size=size)
                _wait(child, deadline)
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
    finally:
        _children.release()
    if "error" in header:
        raise _ChildFailed(str(header.get("detail", "")), memory=header["error"] == "memory")
    if child.returncode != 0:
        raise _death(child.returncode, deadline)
    return header, body


def _exchange(child: subprocess.Popen[bytes], data: bytes, deadline: Deadline, *,
              size: tuple[int, int] | None) -> tuple[dict, bytearray | None]:
    """Feed ``data`` to the child's stdin while reading its stdout, all within the deadline.

    The pixel buffer is allocated once at the size the header announces and filled in place
    (``communicate`` would hold every chunk and then a joined copy: twice the raster).
    """
    assert child.stdin and child.stdout and child.stderr
    view = memoryview(data)
    head = bytearray()
    header: dict | None = None
    body: bytearray | None = None
    filled = 0
    stderr = bytearray()
    with selectors.DefaultSelector() as selector:
        for pipe, event in ((child.stdin, selectors.EVENT_WRITE),
                            (child.stdout, selectors.EVENT_READ),
                            (child.stderr, selectors.EVENT_READ)):
            os.set_blocking(pipe.fileno(), False)
            selector.register(pipe, event)
        if not view:
            selector.unregister(child.stdin)
            child.stdin.close()
        while selector.get_map():
            remaining = deadline.remaining()
            if remaining == 0:
                raise deadline.timeout_error()
            for key, _ in selector.select(remaining):
                stream = key.fileobj
                if stream is child.stdin:  # 64 KiB at a time: what a pipe takes without blocking
                    try:
                        view = view[os.write(child.stdin.fileno(), view[:1 << 16]):]
                    except BrokenPipeError:
                        view = view[:0]
                    if not view:
                        selector.unregister(child.stdin)
                        child.stdin.close()
                elif stream is child.stderr:
                    chunk = os.read(child.stderr.fileno(), 1 << 16)
                    if not chunk:
                        selector.unregister(child.stderr)
                    elif len(stderr) < _STDERR_LIMIT:
                        stderr += chunk[:_STDERR_LIMIT - len(stderr)]
                elif body is not None:
                    count = os.readv(child.stdout.fileno(), [memoryview(body)[filled:]])
                    if count == 0:
                        selector.unregister(child.stdout)
                    filled += count
                else:
                    chunk = os.read(child.stdout.fileno(), 1 << 16)
                    if not chunk:
                        selector.unregister(child.stdout)
                        continue
                    head += chunk
                    if b"\n" in head:
                        line, _, rest = bytes(head).partition(b"\n")
                        header = _parse_header(line)
                        if size is not None and "error" not in header:
                            body = bytearray(_pixel_bytes(header, size))
                            body[:len(rest)] = rest[:len(body)]
                            filled = min(len(rest), len(body))
                        if body is None or filled == len(body):  # nothing more to read
                            selector.unregister(child.stdout)
                    elif len(head) > _HEADER_LIMIT:
                        raise _ChildFailed("malformed reply from the SVG renderer")
    if header is None or (size is not None and "error" not in header
                          and (body is None or filled != len(body))):
        _wait(child, deadline)
        raise _death(child.returncode, deadline, bytes(stderr))
    return header, body


def _wait(child: subprocess.Popen[bytes], deadline: Deadline) -> None:
    try:
        child.wait(deadline.remaining())
    except subprocess.TimeoutExpired as exc:
        raise deadline.timeout_error() from exc


def _parse_header(line: bytes) -> dict:
    try:
        header = json.loads(line)
    except ValueError as exc:
        raise _ChildFailed("malformed reply from the SVG renderer") from exc
    if not isinstance(header, dict):
        raise _ChildFailed("malformed reply from the SVG renderer")
    return header


def _pixel_bytes(header: dict, size: tuple[int, int]) -> int:
    """Bytes of the raster the header announces; it must be the size asked for, 8-bit."""
    try:
        width, height, bands = int(header["width"]), int(header["height"]), int(header["bands"])
        if header["format"] != "uchar" or (width, height) != size or not 1 <= bands <= 4:
            raise ValueError(header)
    except (KeyError, TypeError, ValueError) as exc:
        raise _ChildFailed("malformed reply from the SVG renderer") from exc
    return width * height * bands


def _death(returncode: int | None, deadline: Deadline,
           stderr: bytes = b"") -> _ChildFailed | TransformTimeout:
    """A child that ended without a whole reply: out of CPU time (its backstop), killed by
    another signal (an allocation failure under its memory limit aborts) or exited early."""
    if returncode == -signal.SIGXCPU:
        return deadline.timeout_error()
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        detail = f"SVG renderer stopped by {name}: {stderr.decode(errors='replace').strip()}"
        return _ChildFailed(detail, memory=True)
    return _ChildFailed(f"SVG renderer exited with status {returncode}")
