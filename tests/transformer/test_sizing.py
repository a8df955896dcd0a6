from __future__ import annotations

import pytest

from transformer._sizing import fit_within_pixels, jpeg_shrink_on_load, target_dimensions
from transformer._types import SHORT_EDGE, SIZES


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("width", "height"), [(5640, 3172), (3000, 4000), (1920, 1080),
                                               (2000, 2000), (10000, 1100), (1081, 50000)])
def test_short_edge_is_exact_and_aspect_kept(size: str, width: int, height: int) -> None:
    out_w, out_h = target_dimensions(width, height, size)  # type: ignore[arg-type]
    assert min(out_w, out_h) == SHORT_EDGE[size]  # type: ignore[index]
    assert (out_w >= out_h) == (width >= height)
    # the long edge is the exact ratio rounded: within one pixel of the true aspect
    long_exact = max(width, height) * SHORT_EDGE[size] / min(width, height)  # type: ignore[index]
    assert abs(max(out_w, out_h) - long_exact) <= 0.5


@pytest.mark.parametrize(("width", "height", "size"), [(320, 200, "s"), (640, 640, "m"),
                                                       (1080, 4000, "l"), (100, 50, "l")])
def test_never_upscales(width: int, height: int, size: str) -> None:
    assert target_dimensions(width, height, size) == (width, height)  # type: ignore[arg-type]


def test_no_size_keeps_original() -> None:
    assert target_dimensions(5640, 3172, None) == (5640, 3172)


def test_extreme_aspect_keeps_at_least_one_pixel() -> None:
    assert target_dimensions(100000, 321, "s") == (99688, 320)
    assert target_dimensions(1, 5000, None) == (1, 5000)


def test_rejects_empty_dimensions() -> None:
    with pytest.raises(ValueError):
        target_dimensions(0, 10, "s")


def test_fit_within_pixels() -> None:
    assert fit_within_pixels(1000, 500, 1_000_000) == (1000, 500)
    w, h = fit_within_pixels(20000, 10000, 2_000_000)
    assert w * h <= 2_000_000
    assert abs(w / h - 2) < 0.01
    assert (w, h) == (2000, 1000)


@pytest.mark.parametrize(
    ("width", "height", "size", "factor"),
    [
        (5640, 3172, "m", 4),  # 3172 // 4 = 793 >= 640; // 8 = 396 < 640
        (5640, 3172, "s", 8),
        (5640, 3172, "l", 2),
        (1920, 1080, "m", 1),  # 1080 // 2 = 540 < 640
        (1920, 1280, "m", 2),
        (3000, 4000, "l", 2),  # portrait: the short edge decides
        (640, 480, "m", 1),  # not resized at all
    ],
)
def test_jpeg_shrink_on_load_leaves_at_least_the_target(width: int, height: int, size: str,
                                                        factor: int) -> None:
    target = target_dimensions(width, height, size)  # type: ignore[arg-type]
    assert jpeg_shrink_on_load(width, height, target) == factor
    assert min(width, height) // factor >= min(target)


@pytest.mark.parametrize(
    ("width", "height", "size", "fast", "final"),
    [
        (5640, 3172, "m", 4, 2),   # 4.96x: one step past 1/4 is not reached
        (2560, 1600, "m", 2, 1),   # 2.5x
        (1920, 1280, "m", 2, 1),   # exactly 2x
        (3840, 2400, "m", 2, 2),   # 3.75x: the final reduce has 1.9x to work with
        (5120, 3200, "m", 4, 4),   # 5x
        (1920, 1080, "m", 1, 1),   # under 2x: no shrink either way
    ],
)
def test_keep_detail_decodes_a_step_larger_when_the_reduce_would_be_short(
        width: int, height: int, size: str, fast: int, final: int) -> None:
    target = target_dimensions(width, height, size)  # type: ignore[arg-type]
    assert jpeg_shrink_on_load(width, height, target) == fast
    assert jpeg_shrink_on_load(width, height, target, keep_detail=True) == final
