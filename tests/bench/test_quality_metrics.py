"""The quality benchmark's scoring and equal-score interpolation, on tiny generated images."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import pyvips
from ssimulacra2 import compute_ssimulacra2

from bench import quality
from bench.quality_metrics import (
    Ssimulacra2Reference,
    as_array,
    decoded,
    frontier,
    log_bytes_at_score,
    q_at_score,
    reference_at,
    ssim_luma,
    to_srgb_rgb,
)


def _photo_like(width: int = 96, height: int = 64) -> np.ndarray:
    """Smooth gradients plus fine detail, so blur and compression both show."""
    y, x = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(1)
    detail = rng.normal(0, 18, (height, width))
    r = 120 + 80 * np.sin(x / 7.0) + detail
    g = 100 + 60 * np.cos(y / 5.0) + detail
    b = 90 + 0.8 * x + 0.5 * y
    return np.clip(np.dstack([r, g, b]), 0, 255).astype(np.uint8)


def _vips(rgb: np.ndarray) -> pyvips.Image:
    height, width = rgb.shape[:2]
    image = pyvips.Image.new_from_memory(rgb.tobytes(), width, height, 3, "uchar")
    return image.copy(interpretation="srgb")


def _blurred(rgb: np.ndarray, sigma: float = 1.2) -> np.ndarray:
    return as_array(_vips(rgb).gaussblur(sigma).cast("uchar"))


# ---- interpolation -----------------------------------------------------------------------------


def test_log_bytes_interpolated_linearly_in_score() -> None:
    points = [(60.0, 1000.0), (70.0, 2000.0), (80.0, 4000.0)]
    size, outside = log_bytes_at_score(points, 75.0)
    assert size == pytest.approx(math.sqrt(2000 * 4000))
    assert not outside
    assert log_bytes_at_score(points, 70.0)[0] == pytest.approx(2000)
    assert log_bytes_at_score(list(reversed(points)), 65.0)[0] == pytest.approx(
        math.sqrt(1000 * 2000))


def test_beyond_the_sweep_the_end_segment_is_extended_and_flagged() -> None:
    points = [(60.0, 1000.0), (70.0, 2000.0), (80.0, 4000.0)]
    above, outside = log_bytes_at_score(points, 90.0)
    assert above == pytest.approx(8000) and outside
    below, outside = log_bytes_at_score(points, 50.0)
    assert below == pytest.approx(500) and outside


def test_dominated_points_are_dropped() -> None:
    # q90 scored lower than q80 at more bytes: not on the curve.
    points = [(60.0, 1000.0), (80.0, 4000.0), (78.0, 5000.0), (70.0, 2000.0)]
    assert frontier(points) == [(60.0, 1000.0), (70.0, 2000.0), (80.0, 4000.0)]
    assert log_bytes_at_score(points, 79.0)[0] < 4000


def test_q_at_score() -> None:
    points = [(50.0, 60.0), (70.0, 70.0), (90.0, 90.0)]
    assert q_at_score(points, 65.0) == pytest.approx(60)
    assert q_at_score(points, 80.0) == pytest.approx(80)
    assert q_at_score(points, 95.0) == pytest.approx(95)  # extended


# ---- scores ------------------------------------------------------------------------------------


def test_reference_scores_as_the_package_does(tmp_path: Path) -> None:
    sharp = _photo_like()
    noisy = decoded(_vips(sharp).write_to_buffer(".jpg", Q=40))
    for name, rgb in (("ref", sharp), ("dist", noisy)):
        _vips(rgb).write_to_file(str(tmp_path / f"{name}.png"))
    expected = compute_ssimulacra2(str(tmp_path / "ref.png"), str(tmp_path / "dist.png"))
    assert Ssimulacra2Reference(sharp).score(noisy) == pytest.approx(expected, abs=1e-9)


def test_identical_scores_100_and_blur_scores_lower() -> None:
    sharp = _photo_like()
    reference = Ssimulacra2Reference(sharp)
    assert reference.score(sharp) == pytest.approx(100)
    light, heavy = reference.score(_blurred(sharp, 0.8)), reference.score(_blurred(sharp, 2.0))
    assert 100 > light > heavy
    assert ssim_luma(sharp, sharp) == pytest.approx(1)
    assert 1 > ssim_luma(sharp, _blurred(sharp, 0.8)) > ssim_luma(sharp, _blurred(sharp, 2.0))


def test_higher_jpeg_quality_scores_higher() -> None:
    sharp = _photo_like()
    reference = Ssimulacra2Reference(sharp)
    scores = [reference.score(decoded(_vips(sharp).write_to_buffer(".jpg", Q=q)))
              for q in (30, 60, 90)]
    assert scores == sorted(scores)


def test_size_mismatch_is_refused() -> None:
    with pytest.raises(ValueError):
        Ssimulacra2Reference(_photo_like(96, 64)).score(_photo_like(95, 64))


def test_reference_has_the_exact_size_and_alpha_on_white() -> None:
    transparent = pyvips.Image.black(101, 67, bands=4).copy(interpretation="srgb").cast("uchar")
    flattened = to_srgb_rgb(transparent)
    assert flattened.bands == 3 and flattened.min() == 255
    resized = reference_at(flattened.copy_memory(), 33, 22)
    assert resized.shape == (22, 33, 3)
    grey = to_srgb_rgb(pyvips.Image.black(8, 8).copy(interpretation="b-w").cast("uchar") + 7)
    assert grey.bands == 3


# ---- what the benchmark runs -------------------------------------------------------------------


def test_every_lane_finds_our_fast_and_final_settings() -> None:
    for lane in quality.LANES:
        found = quality.candidates(lane.fmt)
        ours = quality.ours_candidates(lane.fmt, found)
        assert set(ours) == {"fast", "final"}
        assert all(candidate in found for candidate in ours.values())
        assert any(c.name == "today (e4)" for c in found)


def test_candidates_encode_a_tiny_image() -> None:
    image = _vips(_photo_like(32, 24))
    for fmt in ("jpeg", "webp"):
        for candidate in quality.candidates(fmt):  # type: ignore[arg-type]
            if "jpegtran" in candidate.name:
                continue  # needs the jpegtran program
            data = candidate.encode(image, 70)
            assert decoded(data).shape[:2] == (24, 32), candidate.name
