"""Short-edge size math: pure arithmetic, no image library, so it is trivially testable.

A named size fixes the SHORT edge (s=320, m=640, l=1080) and the long edge follows the aspect
ratio. Images whose short edge is already at or below the target keep their own dimensions:
we never upscale, because a CDN rendition bigger than its original only costs bytes.
"""

from __future__ import annotations

from transformer._types import SHORT_EDGE, Size


def target_dimensions(width: int, height: int, size: Size | None) -> tuple[int, int]:
    """The rendition's (width, height) for a displayed ``width`` x ``height`` image.

    The short edge becomes exactly the target; the long edge is rounded to the nearest pixel
    (at least 1), so the aspect ratio is kept within one pixel.
    """
    if width < 1 or height < 1:
        raise ValueError(f"image dimensions must be positive, got {width}x{height}")
    if size is None:
        return width, height
    target = SHORT_EDGE[size]
    short, long = min(width, height), max(width, height)
    if short <= target:
        return width, height
    scaled_long = max(1, round(long * target / short))
    return (scaled_long, target) if width >= height else (target, scaled_long)


def fit_within_pixels(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """Scale ``width`` x ``height`` down (aspect kept) so that it covers at most ``max_pixels``.

    Used for vector inputs, whose declared size is only a hint: rasterising an SVG at its
    declared 20000x20000 would cost gigabytes for no benefit.
    """
    if width * height <= max_pixels:
        return width, height
    scale = (max_pixels / (width * height)) ** 0.5
    return max(1, int(width * scale)), max(1, int(height * scale))


JPEG_SHRINK_FACTORS = (8, 4, 2)
"""The scales libjpeg can decode at directly (DCT scaling)."""


def jpeg_shrink_on_load(width: int, height: int, target: tuple[int, int], *,
                        keep_detail: bool = False) -> int:
    """The largest JPEG decode scale that still leaves the image at least ``target`` big.

    libvips' ``thumbnail`` keeps "at least a factor of two for the final resize", so a 5640 px
    JPEG headed for m (640) is decoded at half size; this decodes it at a quarter. Decoding 4x
    fewer pixels is most of an m JPEG's CPU, which is what a CDN miss needs.

    ``keep_detail`` applies sharp's extra rule: when the whole shrink is less than one step
    past the scale (a 2.5x shrink decoded at 1/2, a 4.9x one at 1/4), decode at the next larger
    scale. Without it the final reduce has too few pixels to work with and fine detail aliases:
    such renditions score measurably lower against a full-resolution reference, so they need
    more bytes for the same visual quality (docs/bench-quality.md). The final encoder settings
    use it; the fast ones do not.
    """
    short, target_short = min(width, height), min(target)
    for factor in JPEG_SHRINK_FACTORS:
        if short // factor >= target_short:
            if keep_detail and short // target_short == factor:
                return factor // 2
            return factor
    return 1
