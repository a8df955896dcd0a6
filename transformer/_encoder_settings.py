"""Encoder settings of every rendition: the one place they are defined.

Each output format has two settings, named by ``Effort``:

- ``"fast"``: what a CDN miss can afford to wait for (a client is on the line);
- ``"final"``: the smallest bytes at the same visual quality that a background CPU budget
  allows, for a rendition that is computed once and then served many times.

Both aim at the same visual quality: the SSIMULACRA2 score that sharp (ipx) reaches at q80,
the quality the comparison with the peers assumes. That is why the quality number differs
between settings and encoders: each encoder needs its own q to reach that score. The settings
were chosen by measurement (``python -m bench.quality``; the tables, the command and the
reasoning are in docs/bench-quality.md and README, "Encoder settings and how they were
chosen").

Changing any value here changes the bytes of renditions, so ``ENCODER_SETTINGS_VERSION`` must
change with it: the rendition caches include it in their keys, and old renditions then simply
stop being hit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import pyvips

from transformer._types import Format

ENCODER_SETTINGS_VERSION = "e6"
"""Bump whenever a constant below changes (part of every rendition cache key).
e4: every rendition declares 72 dpi (``PIXELS_PER_MM``) whatever its original said.
e5: JPEG through jpegli; fast and final settings per format, each at the q that reaches the
score of sharp's q80.
e6: the fast AVIF setting is 4:2:0 at q78 (was 4:4:4 at q77): a miss costs less CPU."""

REFERENCE_QUALITY = 80
"""sharp's (ipx's) quality whose SSIMULACRA2 score every lossy setting below is tuned to reach
(docs/bench-quality.md): the comparison with the peers is at equal visual quality, not at equal
q, since q means something different to every encoder."""

Effort = Literal["fast", "final"]
"""Which of a format's two settings to encode with (see the module docstring)."""
EFFORTS: tuple[Effort, ...] = get_args(Effort)

DEFAULT_EFFORT: Effort = "final"
"""The library's default. A caller of the library usually encodes once and stores or serves
the result many times, so the smaller bytes are worth the encode time; a caller with a client
waiting (a CDN miss) asks for ``"fast"`` explicitly."""

Encoder = Literal["libvips", "jpegli"]

PIXELS_PER_MM = 72 / 25.4
"""The density every rendition declares (JFIF, pHYs, ...): 72 dpi, as sharp writes. An
original's own density is print metadata, meaningless on the web; copying it made a
rendition's bytes depend on which decoder read the original (README, "Transform library")."""

_NO_METADATA = pyvips.ForeignKeep.NONE
"""Renditions carry no EXIF/XMP/IPTC/ICC: pixels are converted to sRGB first, which browsers
assume for untagged images, and EXIF alone costs up to ~49 KB per rendition."""


@dataclass(frozen=True)
class EncoderSetting:
    """One way to encode a rendition: the encoder, its quality, and libvips saver options.

    ``options`` are keyword arguments of libvips' saver besides ``Q`` and ``keep``. A jpegli
    setting has a ``fallback``: the libvips setting used for what jpegli cannot take
    (greyscale) or when it fails.
    """

    encoder: Encoder
    quality: int | None
    options: Mapping[str, Any] = field(default_factory=dict)
    fallback: EncoderSetting | None = None

    def libvips_options(self) -> dict[str, Any]:
        """Keyword arguments for ``image.write_to_buffer(SAVE_SUFFIX[fmt], **options)``."""
        if self.encoder != "libvips":
            raise ValueError(f"a {self.encoder} setting has no libvips options")
        quality = {} if self.quality is None else {"Q": self.quality}
        return {**quality, **self.options, "keep": _NO_METADATA}

    def with_quality(self, quality: int) -> EncoderSetting:
        """The same setting at another quality (the benchmarks sweep it)."""
        return EncoderSetting(self.encoder, quality, self.options, self.fallback)


# ---- JPEG ----------------------------------------------------------------------------------

JPEG_LIBVIPS = EncoderSetting("libvips", 80, {
    "optimize_coding": True,   # optimal Huffman tables: fewer bytes, same pixels, cheap
    "interlace": True,         # progressive: fewer bytes, same pixels
    "trellis_quant": False,    # saves bytes only by lowering quality, and slow
    "overshoot_deringing": False,
    "optimize_scans": False,   # a few per cent of bytes for a much slower encode
    "quant_table": 0,          # table 3 saves bytes only by lowering quality
    "subsample_mode": "on",    # 4:2:0 chroma, as sharp does at q80
})
"""libvips' own JPEG saver (libjpeg-turbo / mozjpeg inside pyvips-binary): jpegli's fallback,
settings e4 unchanged (at q80 it reaches the score of sharp's q80)."""

JPEG_FAST = EncoderSetting("jpegli", 81, fallback=JPEG_LIBVIPS)
"""jpegli (``transformer._jpegli``), baseline 4:2:0: fewer bytes than libvips at equal score,
and less encode CPU. q81 is where it reaches sharp's q80 score."""
JPEG_FINAL = EncoderSetting("jpegli", 81, {"progressive": True}, fallback=JPEG_LIBVIPS)
"""The same jpegli encode, then rewritten losslessly as progressive with optimal Huffman tables
(the same pixels, fewer bytes, more CPU than the encode itself). jpegli through this
binding writes 4:2:0 only; libvips' 4:4:4 needed far more bytes at equal score, so 4:2:0 is no
loss. Every browser decodes baseline and progressive JPEG alike."""

# ---- WebP ----------------------------------------------------------------------------------

WEBP_FAST = EncoderSetting("libvips", 82, {"effort": 2, "smart_subsample": False})
"""Effort 2: about half the encode CPU of effort 4 (effort 3 costs as much as 4), for a miss.
It needs q82 to reach sharp's q80 score (its effort 4 gets there at q80)."""
WEBP_FINAL = EncoderSetting("libvips", 80, {"effort": 6, "smart_subsample": False})
"""Effort 6, libwebp's slowest: the fewest bytes at equal score, at many times the encode CPU of
effort 2, which only a background re-encode can afford. smart_subsample cost bytes at equal
score."""

# ---- AVIF ----------------------------------------------------------------------------------

AVIF_FAST = EncoderSetting("libvips", 78, {"effort": 0, "subsample_mode": "on"})
"""Effort 0, for a miss: effort 1 already takes several times the CPU, too slow at l on 2
cores. 4:2:0 rather than 4:4:4: a provisional rendition is served for minutes with a client
waiting for it, so its CPU counts more than a few per cent of bytes; at q78 it reaches the
score of 4:4:4 at q77 at both m and l, so one q serves both sizes. Chosen with
``python -m bench.setting_ab avif fast --against 'libvips 77 effort=0 subsample_mode=off'``;
the figures are in the README, "Miss speed"."""
AVIF_FINAL = EncoderSetting("libvips", 75, {"effort": 4, "subsample_mode": "off"})
"""Effort 4 (libvips' default), 4:4:4: the fewest bytes at equal score the background budget
allows (seconds of CPU per l rendition); effort 6 saved a little more at m for several times the
CPU, more than a background lane can drain."""

# ---- PNG -----------------------------------------------------------------------------------

PNG_SETTING = EncoderSetting("libvips", None, {"compression": 6, "palette": False})
"""zlib's default level (9 saves little for much more CPU); no palette (lossy, and slow).
Lossless, and as fast as it gets: the same for both efforts."""

SETTINGS: dict[tuple[Format, Effort], EncoderSetting] = {
    ("jpeg", "fast"): JPEG_FAST,
    ("jpeg", "final"): JPEG_FINAL,
    ("webp", "fast"): WEBP_FAST,
    ("webp", "final"): WEBP_FINAL,
    ("avif", "fast"): AVIF_FAST,
    ("avif", "final"): AVIF_FINAL,
    ("png", "fast"): PNG_SETTING,
    ("png", "final"): PNG_SETTING,
}

REFINABLE_FORMATS: frozenset[Format] = frozenset(
    fmt for (fmt, effort), setting in SETTINGS.items()
    if effort == "final" and setting != SETTINGS[(fmt, "fast")])
"""Formats whose final setting is not their fast one: a server answering a waiting client may
encode fast and re-encode at the final setting later; the others are final at once."""

SAVE_SUFFIX: dict[Format, str] = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "avif": ".avif"}
"""The suffix that picks libvips' saver in ``Image.write_to_buffer``."""


def encoder_setting(fmt: Format, effort: Effort = DEFAULT_EFFORT) -> EncoderSetting:
    """The setting ``transform`` encodes ``fmt`` with at ``effort``."""
    if effort not in EFFORTS:
        raise ValueError(f"unknown effort {effort!r}; expected one of {EFFORTS}")
    try:
        return SETTINGS[(fmt, effort)]
    except KeyError:
        raise ValueError(f"unknown output format {fmt!r}") from None


def encoder_options(fmt: Format, effort: Effort = DEFAULT_EFFORT) -> dict[str, Any]:
    """libvips saver keywords for ``fmt``: ``image.write_to_buffer(SAVE_SUFFIX[fmt], **options)``.

    For a format encoded by jpegli these are its libvips fallback's. The CDN, the embedded
    library and the benchmarks' in-process baseline all encode with these settings, so their
    figures compare like with like.
    """
    setting = encoder_setting(fmt, effort)
    if setting.encoder != "libvips":
        assert setting.fallback is not None
        setting = setting.fallback
    return setting.libvips_options()
