"""``transform``: an original's bytes in, one rendition out, as an ordered list of small steps.

Like imgproxy's pipeline, each step is a named function that reads and updates one ``Job``;
``PIPELINE`` lists them in order, so what happens to an image (and in which order) is read off
one tuple rather than out of a long function:

    read_header        type by magic bytes, dimensions and layout from the header only
    refuse_oversized   declared pixels over the limit -> ImageTooLarge, before any decode
    refuse_truncated   cheap checks that the file's end is there (transformer._completeness)
    plan_geometry      short-edge size math (per frame for animations), SVG raster cap
    reserve_memory     decodes that hold a whole image reserve it from a budget (see below)
    load_and_shrink    libvips thumbnail (shrink-on-load, less of it for the final effort,
                       EXIF orientation, CMYK -> sRGB);
                       SVG rendered at the target size in a killable child process
    to_srgb_8bit       embedded ICC profile -> sRGB; 16-bit / odd colour spaces -> 8-bit
    flatten_alpha      JPEG has no alpha: composite on white
    encode             jpegli for JPEG (libvips as its fallback), libvips' saver for the others,
                       with the measured fast or final setting, no metadata, deadline

libvips evaluates lazily, so most of the work happens inside ``encode``; the steps before it
only build the pipeline. That is also why the time limit is enforced by the deadline watching
the final image and not by timing the steps.

Memory: a decode that cannot stream (progressive JPEG, interlaced PNG, GIF, WebP, HEIF, TIFF,
BMP, and an SVG, whose raster comes back whole from its renderer process) reserves its
estimated bytes from one per-process budget, ``DECODE_MEMORY``, and waits for its turn within
the deadline (``transformer._memory_budget`` has the figures). Small ones (under
``SMALL_DECODE_BYTES``) skip the budget: a thread pool bounds them well enough.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field

import pyvips

from transformer import _jpegli
from transformer._completeness import check_complete
from transformer._deadline import Deadline
from transformer._encoder_settings import (
    DEFAULT_EFFORT,
    EFFORTS,
    PIXELS_PER_MM,
    SAVE_SUFFIX,
    Effort,
    EncoderSetting,
    encoder_setting,
)
from transformer._engine import ensure_initialised, load_from_memory, thumbnail_from_memory
from transformer._errors import UnsupportedImage
from transformer._memory_budget import MemoryBudget
from transformer._pillow_decode import decode_bmp, decode_heif
from transformer._probe import Header
from transformer._probe import read_header as _read_header
from transformer._probe import refuse_oversized as _refuse_oversized
from transformer._sizing import fit_within_pixels, jpeg_shrink_on_load, target_dimensions
from transformer._svg_sandbox import render_svg
from transformer._turbojpeg import decode_scaled
from transformer._types import FORMATS, Format, Rendition, Size

DEFAULT_MAX_PIXELS = 100_000_000
"""Declared pixels above which an original is refused unread (a decompression bomb)."""

SVG_MAX_RASTER_PIXELS = 25_000_000
"""An SVG is rasterised at most this big (aspect kept), whatever size it declares: vector
input is cheap to store and arbitrarily expensive to render."""

SVG_RASTER_BANDS = 4
"""librsvg renders 8-bit RGBA."""

DECODE_MEMORY = MemoryBudget(1 << 30)
"""Bytes of whole-image decodes allowed at once per process (1 GiB: two 100 MP RGBA images)."""
SMALL_DECODE_BYTES = 16 << 20
"""Whole-image decodes below this (~4 MP RGBA) do not wait for the budget."""

LOAD_OPTIONS = "fail_on=error"
"""Truncated or corrupt data is an error, not a grey half-image (libvips' default is to warn)."""


@dataclass
class Job:
    """Everything the steps share about one transform."""

    data: bytes
    size: Size | None
    fmt: Format
    effort: Effort
    setting: EncoderSetting
    max_pixels: int
    deadline: Deadline
    resources: ExitStack
    header: Header | None = None
    target: tuple[int, int] = (0, 0)
    keep_animation: bool = False
    image: pyvips.Image | None = field(default=None, repr=False)
    output: bytes = b""

    def require_header(self) -> Header:
        if self.header is None:
            raise RuntimeError("pipeline step ran before read_header")
        return self.header

    def require_image(self) -> pyvips.Image:
        if self.image is None:
            raise RuntimeError("pipeline step ran before load_and_shrink")
        return self.image


Step = Callable[[Job], None]


def read_header(job: Job) -> None:
    job.header = _read_header(job.data)


def refuse_oversized(job: Job) -> None:
    header = job.require_header()
    _refuse_oversized(header, job.max_pixels)
    # An animation kept as WebP decodes every frame: past the limit in all, its first frame
    # is served instead (as for JPEG/PNG/AVIF) rather than no image at all.
    job.keep_animation = (job.fmt == "webp" and header.animated
                          and header.pixels * header.info.frames <= job.max_pixels)


def refuse_truncated(job: Job) -> None:
    check_complete(job.require_header().info.format, job.data)


def plan_geometry(job: Job) -> None:
    info = job.require_header().info
    width, height = info.width, info.height
    if info.format == "svg":
        width, height = fit_within_pixels(width, height, SVG_MAX_RASTER_PIXELS)
    job.target = target_dimensions(width, height, job.size)


def reserve_memory(job: Job) -> None:
    header = job.require_header()
    needed = header.buffered_bytes
    if header.decoder == "svg-sandbox":  # the child's raster arrives whole, at the target size
        needed = job.target[0] * job.target[1] * SVG_RASTER_BANDS
    if needed >= SMALL_DECODE_BYTES:
        job.resources.enter_context(DECODE_MEMORY.reserve(needed, job.deadline))


def load_and_shrink(job: Job) -> None:
    header = job.require_header()
    width, height = job.target
    resize = {"height": height, "size": "force"}
    decoder = header.decoder
    shrink = (jpeg_shrink_on_load(header.info.width, header.info.height, job.target,
                                  keep_detail=job.effort == "final")
              if header.info.format == "jpeg" else 1)
    if decoder == "turbojpeg":
        decoded = decode_scaled(job.data, shrink, orientation=header.info.orientation,
                                icc_profile=header.icc_profile)
        if decoded is not None:
            job.deadline.check()
            job.image = decoded.thumbnail_image(width, **resize)
            return
        decoder = "vips"  # too large to decode whole, or refused: libvips streams or decides
    try:
        if decoder == "vips" and shrink > 1:
            # Decode at 1/2, 1/4 or 1/8 scale ourselves (see jpeg_shrink_on_load), then let
            # thumbnail do the rest: orientation, colour and the final reduce.
            loaded = load_from_memory(job.data, shrink=shrink, access="sequential",
                                      fail_on="error")
            job.image = loaded.thumbnail_image(width, **resize)
        elif decoder == "svg-sandbox":
            # librsvg cannot be interrupted between tiles: it runs in a child process that is
            # killed at the deadline, and hands back the raster at the target size.
            job.image = render_svg(job.data, width, height, job.deadline)
        elif decoder == "vips":
            options = LOAD_OPTIONS + (",n=-1" if job.keep_animation else "")
            job.image = thumbnail_from_memory(job.data, width, option_string=options, **resize)
        else:
            decoded = decode_bmp(job.data) if decoder == "pillow" else decode_heif(job.data)
            job.deadline.check()
            job.image = decoded.thumbnail_image(width, **resize)
    except pyvips.Error as exc:
        raise UnsupportedImage(f"could not decode the {header.info.format.upper()} image") from exc
    if job.keep_animation:
        _check_frames(job.image, height, header.info.frames)


def to_srgb_8bit(job: Job) -> None:
    image = job.require_image()
    if "icc-profile-data" in image.get_fields():
        # Converting after the resize, on the small image, costs ~10 ms for an m rendition;
        # asking thumbnail for output_profile="srgb" converted before the reduce (~125 ms, and
        # for untagged images too). Untagged pixels are taken as sRGB, as browsers do.
        # A profile lcms cannot parse is ignored (pixels taken as sRGB), as browsers do.
        with contextlib.suppress(pyvips.Error):
            image = image.icc_transform("srgb", embedded=True, intent="relative")
    if image.interpretation in ("b-w", "grey16"):
        wanted = "b-w" if job.fmt in ("jpeg", "png") else "srgb"
    else:
        wanted = "srgb"
    if image.interpretation != wanted or image.format != "uchar":
        image = image.colourspace(wanted)
        if image.format != "uchar":
            image = image.cast("uchar")
    job.image = image


def flatten_alpha(job: Job) -> None:
    image = job.require_image()
    if job.fmt == "jpeg" and image.hasalpha():
        job.image = image.flatten(background=[255] * (image.bands - 1))


def encode(job: Job) -> None:
    image = job.require_image().copy(xres=PIXELS_PER_MM, yres=PIXELS_PER_MM)
    job.deadline.check()
    job.deadline.watch(image)  # the image written: its evaluation is what the deadline stops
    try:
        job.output = encode_image(image, job.fmt, job.setting)
    except pyvips.Error as exc:
        if job.deadline.killed:
            raise job.deadline.timeout_error() from exc
        fmt = job.require_header().info.format.upper()
        raise UnsupportedImage(f"could not decode the {fmt} image (truncated or corrupt)") from exc


def encode_image(image: pyvips.Image, fmt: Format, setting: EncoderSetting) -> bytes:
    """``image`` (8-bit sRGB or grey, alpha already flattened for JPEG) encoded with ``setting``.

    A jpegli setting encodes with jpegli what it can take and falls back to its libvips setting
    for the rest, or when jpegli fails (``transformer._jpegli``). The benchmarks call this too,
    so that what they measure is what ``transform`` writes.
    """
    if setting.encoder == "jpegli":
        if setting.quality is not None and _jpegli.can_encode(image):
            # Computed once, straight into the packed buffer jpegli takes (a memory image
            # first, then that buffer, cost a second copy of every rendition's pixels). A
            # fallback after a jpegli failure encodes these same pixels rather than re-running
            # a decode that may only read its source once (sequential access).
            pixels = image.write_to_memory()
            data = _jpegli.encode_pixels(pixels, image.width, image.height, setting.quality,
                                         progressive=bool(setting.options.get("progressive")))
            if data is not None:
                return data
            image = pyvips.Image.new_from_memory(
                pixels, image.width, image.height, image.bands, image.format,
            ).copy(interpretation=image.interpretation, xres=image.xres, yres=image.yres)
        if setting.fallback is None:
            raise ValueError("a jpegli setting needs a libvips fallback")
        setting = setting.fallback
    return bytes(image.write_to_buffer(SAVE_SUFFIX[fmt], **setting.libvips_options()))


PIPELINE: tuple[Step, ...] = (
    read_header,
    refuse_oversized,
    refuse_truncated,
    plan_geometry,
    reserve_memory,
    load_and_shrink,
    to_srgb_8bit,
    flatten_alpha,
    encode,
)


def transform(data: bytes, size: Size | None = None, fmt: Format = "jpeg", *,
              max_pixels: int = DEFAULT_MAX_PIXELS, timeout: float | None = None,
              effort: Effort = DEFAULT_EFFORT) -> Rendition:
    """Resize ``data`` so its short edge is the named ``size`` and encode it as ``fmt``.

    ``size`` None keeps the original dimensions; smaller images are never upscaled. EXIF
    orientation is applied, colour is converted to 8-bit sRGB, alpha is flattened on white for
    JPEG, animated GIF/WebP stay animated only as WebP, and no metadata is kept.

    Raises ``UnsupportedImage`` (not an image, truncated, unsupported type), ``ImageTooLarge``
    (declared pixels over ``max_pixels``, refused before decoding) or ``TransformTimeout``
    (over ``timeout`` seconds); all are ``TransformError``. Safe to call from many threads.

    ``effort`` picks the encoder setting (``transformer._encoder_settings``): ``"final"``, the
    default, gives the smallest bytes at the target visual quality and suits a rendition that is
    stored or served many times; ``"fast"`` gives about the same visual quality in a fraction of
    the CPU, at more bytes, for a client that is waiting (a CDN miss). ``"final"`` also decodes
    some JPEGs at a larger scale (``jpeg_shrink_on_load``'s ``keep_detail``).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {FORMATS}")
    if effort not in EFFORTS:
        raise ValueError(f"unknown effort {effort!r}; expected one of {EFFORTS}")
    ensure_initialised()
    with ExitStack() as resources:
        job = Job(data=bytes(data), size=size, fmt=fmt, effort=effort,
                  setting=encoder_setting(fmt, effort),
                  max_pixels=max_pixels,
                  deadline=Deadline(timeout), resources=resources)
        for step in PIPELINE:
            job.deadline.check()
            step(job)
        image = job.require_image()
        frame_height = _frame_height(image) if job.keep_animation else image.height
        return Rendition(data=job.output, width=image.width, height=frame_height, format=fmt)


def _frame_height(image: pyvips.Image) -> int:
    if "page-height" in image.get_fields():
        return int(image.get("page-height"))
    return image.height


def _check_frames(image: pyvips.Image, frame_height: int, frames: int) -> None:
    """A cut animation decodes to fewer frames than its header declares (the last of them
    damaged) or to a strip that is not a whole number of frames: refuse it."""
    if _frame_height(image) != frame_height or image.height != frame_height * frames:
        raise UnsupportedImage("animation frames are missing or damaged (truncated or corrupt)")
