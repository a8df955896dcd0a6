"""SSIM's formula once, for any array type with arithmetic operators (numpy arrays in
``bench.quality_metrics``, pyvips images in ``bench.encoder_settings``): each caller brings its
own Gaussian window (``mean``) and averages the map its own way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

Plane = TypeVar("Plane", bound=Any)

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
"""The usual constants for 8-bit values."""


def ssim_map(x: Plane, y: Plane, mean: Callable[[Plane], Plane]) -> Plane:
    """The per-pixel SSIM of two planes of luma, with ``mean`` the local (windowed) mean."""
    mu_x, mu_y = mean(x), mean(y)
    var_x = mean(x * x) - mu_x * mu_x
    var_y = mean(y * y) - mu_y * mu_y
    cov = mean(x * y) - mu_x * mu_y
    return ((2 * mu_x * mu_y + C1) * (2 * cov + C2)) / (
        (mu_x * mu_x + mu_y * mu_y + C1) * (var_x + var_y + C2))
