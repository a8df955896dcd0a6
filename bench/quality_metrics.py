"""Scoring for ``bench/quality.py``: the reference, SSIMULACRA2, SSIM on luma, and the
interpolation that compares encoders at equal score.

SSIMULACRA2 is the PyPI package ``ssimulacra2`` (a NumPy port of libjxl's / Cloudinary's C++
tool, BSD). Its ``compute_ssimulacra2`` reads two files and recomputes everything for both
images; every rendition here is scored against the same reference dozens of times, so
``Ssimulacra2Reference`` runs the package's own steps (``srgb_to_linear``, ``linear_rgb_to_xyb``,
``make_positive_xyb``, ``blur_image``, ``ssim_map``, ``edge_diff_map``, ``downsample``,
``Msssim.score``) in the package's order, with the reference's half done once.
``tests/bench/test_quality_metrics.py`` checks that this gives the package's own score.

The reference of one rendition is the original decoded at full resolution, EXIF orientation
applied, converted to sRGB, alpha flattened on white, and resized with lanczos3 to that
rendition's exact width and height (a peer that rounds a dimension the other way is scored
against its own size, not penalised for the pixel it lacks).

Bytes are compared at equal score: along one setting's q sweep, log(bytes) is interpolated
linearly in score (``log_bytes_at_score``), at the score the reference peer reaches at q80.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import numpy as np
import pyvips
from ssimulacra2 import ssimulacra2 as _s2

from bench.ssim_formula import ssim_map

WHITE = [255.0, 255.0, 255.0]


# ---- pixels ------------------------------------------------------------------------------------


def to_srgb_rgb(image: pyvips.Image) -> pyvips.Image:
    """8-bit sRGB, 3 bands, alpha flattened on white: what both sides of a score are made of."""
    if "icc-profile-data" in image.get_fields():
        with contextlib.suppress(pyvips.Error):
            image = image.icc_transform("srgb", embedded=True, intent="relative")
    if image.hasalpha():
        image = image.flatten(background=[255] * (image.bands - 1))
    if image.interpretation != "srgb" or image.format != "uchar":
        image = image.colourspace("srgb")
    if image.bands == 1:
        image = image.bandjoin([image, image])
    if image.format != "uchar":
        image = image.cast("uchar")
    return image


def as_array(image: pyvips.Image) -> np.ndarray:
    """An H x W x 3 uint8 array of a 3-band uchar image."""
    image = image.copy_memory()
    return np.ndarray(buffer=image.write_to_memory(), dtype=np.uint8,
                      shape=(image.height, image.width, image.bands))


def full_resolution(data: bytes) -> pyvips.Image:
    """The original decoded whole, upright, sRGB, flattened on white (kept in memory)."""
    image = pyvips.Image.new_from_buffer(data, "", access="random").autorot()
    return to_srgb_rgb(image).copy_memory()


def reference_at(original: pyvips.Image, width: int, height: int) -> np.ndarray:
    """``original`` (from ``full_resolution``) resized with lanczos3 to exactly width x height."""
    if (original.width, original.height) == (width, height):
        return as_array(original)
    resized = original.resize(width / original.width, vscale=height / original.height,
                              kernel="lanczos3")
    if (resized.width, resized.height) != (width, height):  # rounding: crop or pad by a pixel
        resized = resized.gravity("centre", width, height, extend="copy")
    return as_array(resized)


def decoded(rendition: bytes) -> np.ndarray:
    """A rendition's pixels as a browser shows them on a white page."""
    return as_array(to_srgb_rgb(pyvips.Image.new_from_buffer(rendition, "")))


# ---- SSIMULACRA2 -------------------------------------------------------------------------------


def _xyb(linear: np.ndarray) -> np.ndarray:
    return _s2.make_positive_xyb(_s2.linear_rgb_to_xyb(linear))


class Ssimulacra2Reference:
    """One reference image, ready to score many distorted versions of it.

    The loop is ``ssimulacra2.compute_ssimulacra2``'s (package 0.3.x), with the reference's
    XYB planes and blurs computed once per scale instead of once per score.
    """

    def __init__(self, rgb: np.ndarray) -> None:
        self.shape = rgb.shape
        self._scales: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        linear = _s2.srgb_to_linear(rgb.astype(np.float64))
        for scale in range(_s2.kNumScales):
            if linear.shape[0] < 8 or linear.shape[1] < 8:
                break
            img1 = _xyb(linear)
            self._scales.append((img1, _s2.blur_image(img1), _s2.blur_image(img1 * img1)))
            if scale < _s2.kNumScales - 1:
                linear = _s2.downsample(linear, 2, 2)

    def score(self, rgb: np.ndarray) -> float:
        """SSIMULACRA2 of ``rgb`` (H x W x 3 uint8, the reference's size) against the reference:
        100 is identical, ~90 visually lossless, ~70 high quality, ~50 medium."""
        if rgb.shape != self.shape:
            raise ValueError(f"distorted image is {rgb.shape}, reference {self.shape}")
        msssim = _s2.Msssim()
        linear = _s2.srgb_to_linear(rgb.astype(np.float64))
        for index, (img1, mu1, sigma11) in enumerate(self._scales):
            img2 = _xyb(linear)
            mu2 = _s2.blur_image(img2)
            scale = _s2.MsssimScale()
            scale.avg_ssim = _s2.ssim_map(mu1, mu2, sigma11, _s2.blur_image(img2 * img2),
                                          _s2.blur_image(img1 * img2))
            scale.avg_edgediff = _s2.edge_diff_map(img1, mu1, img2, mu2)
            msssim.scales.append(scale)
            if index < len(self._scales) - 1:
                linear = _s2.downsample(linear, 2, 2)
        return float(msssim.score())


# ---- SSIM on luma (the cross-check) ------------------------------------------------------------


def ssim_luma(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean SSIM of Rec. 601 luma, Gaussian window sigma 1.5, the usual C1 and C2."""
    from scipy import ndimage

    weights = np.array([0.299, 0.587, 0.114])
    x = reference.astype(np.float64) @ weights
    y = test.astype(np.float64) @ weights

    def mean(plane: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(plane, 1.5, truncate=3.5, mode="reflect")

    return float(ssim_map(x, y, mean).mean())


# ---- equal-score interpolation -----------------------------------------------------------------


def frontier(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """(score, bytes) points an encoder reached, sorted by score, keeping only those that no
    other point beats (higher or equal score for fewer or equal bytes): the q sweep's curve
    with its non-monotonic wiggles removed."""
    best: list[tuple[float, float]] = []
    for score, size in sorted(points, key=lambda p: (-p[0], p[1])):
        if not best or size < best[-1][1]:
            best.append((score, size))
    return best[::-1]


def log_bytes_at_score(points: Sequence[tuple[float, float]],
                       target: float) -> tuple[float, bool]:
    """Bytes this encoder needs to reach score ``target``, interpolating log(bytes) linearly in
    score between the two sweep points around it; beyond the sweep the end segment is
    extended. Returns (bytes, extrapolated)."""
    curve = frontier(points)
    if not curve:
        raise ValueError("no points")
    if len(curve) == 1:
        return curve[0][1], curve[0][0] != target
    scores = [s for s, _ in curve]
    logs = [math.log(b) for _, b in curve]
    extrapolated = not scores[0] <= target <= scores[-1]
    i = 1
    while i < len(curve) - 1 and scores[i] < target:
        i += 1
    s0, s1, l0, l1 = scores[i - 1], scores[i], logs[i - 1], logs[i]
    value = l0 + (l1 - l0) * (target - s0) / (s1 - s0)
    return math.exp(value), extrapolated


def q_at_score(points: Sequence[tuple[float, float]], target: float) -> float:
    """The quality setting at which a sweep of (q, score) reaches ``target``: q interpolated
    linearly in score (sorted by q; the end segments extended)."""
    ordered = sorted(points)
    if len(ordered) < 2:
        raise ValueError("need two points")
    i = 1
    while i < len(ordered) - 1 and ordered[i][1] < target:
        i += 1
    (q0, s0), (q1, s1) = ordered[i - 1], ordered[i]
    if s1 == s0:
        return q1
    return q0 + (q1 - q0) * (target - s0) / (s1 - s0)
