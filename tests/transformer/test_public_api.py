"""The curated public surface: what ``import transformer`` offers, and nothing by accident."""

from __future__ import annotations

import transformer


def test_all_names_exist_once() -> None:
    for name in transformer.__all__:
        assert hasattr(transformer, name), name
    assert len(set(transformer.__all__)) == len(transformer.__all__)


def test_entry_points_are_exported() -> None:
    assert {"transform", "probe", "configure", "ENCODER_SETTINGS_VERSION", "encoder_options",
            "TransformError", "UnsupportedImage", "ImageTooLarge",
            "TransformTimeout"} <= set(transformer.__all__)


def test_error_tree() -> None:
    for error in (transformer.UnsupportedImage, transformer.ImageTooLarge,
                  transformer.TransformTimeout):
        assert issubclass(error, transformer.TransformError)
    assert transformer.ImageTooLarge.code == "image_too_large"
    assert transformer.TransformTimeout.status == 503
