"""The test image set: three real photos kept in this folder, and the images derived from them.

Derivations are deterministic (seeded grain, fixed encoder settings) and cached under the
system temp dir in a folder named by a hash of the seeds and of this file, so a change to
either builds a new set and concurrent test processes never see a half-written one (each set
is written to a temporary folder, then renamed into place).

    python tests/images/build.py      # build (if needed) and list the set
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEEDS = ("photo-ladybird-2560x1600.jpg", "photo-wood-portrait-1440x1920.jpg",
         "photo-yellowflower-1920x1080.jpg")
MANIFEST = "MANIFEST.tsv"


def _vips():  # type: ignore[no-untyped-def]
    import pyvips  # here, so that importing this module (conftest) stays cheap

    return pyvips


def _upscaled_with_grain(seed: str, factor: int, grain_seed: int) -> Callable[[Path], None]:
    """A real-camera pixel count from a real photo: lanczos3 upscale plus gaussian grain."""
    def build(out: Path) -> None:
        pyvips = _vips()
        image = pyvips.Image.new_from_file(str(HERE / seed), access="sequential")
        image = image.resize(factor, kernel="lanczos3")
        noise = pyvips.Image.gaussnoise(image.width, image.height, sigma=4, mean=0,
                                        seed=grain_seed)
        image = (image + noise).cast("uchar")
        image.write_to_file(str(out), Q=90, subsample_mode="on", keep="none")
    return build


def _downscaled(seed: str, box: tuple[int, int], suffix: str) -> Callable[[Path], None]:
    def build(out: Path) -> None:
        pyvips = _vips()
        image = pyvips.Image.thumbnail(str(HERE / seed), box[0], height=box[1])
        image.write_to_file(f"{out}{suffix}", keep="none")
    return build


def _soft_alpha(seed: str, box: tuple[int, int]) -> Callable[[Path], None]:
    """RGBA with an elliptical alpha that fades from opaque at the centre to clear at the edge."""
    def build(out: Path) -> None:
        pyvips = _vips()
        image = pyvips.Image.thumbnail(str(HERE / seed), box[0], height=box[1])
        xy = pyvips.Image.xyz(image.width, image.height)
        cx, cy = image.width / 2, image.height / 2
        dist = (((xy[0] - cx) / cx) ** 2 + ((xy[1] - cy) / cy) ** 2) ** 0.5
        alpha = ((1.15 - dist) * 255 * 2.5).cast("uchar")  # clamps to 0..255
        image.bandjoin(alpha).write_to_file(str(out), keep="none")
    return build


BUILT: dict[str, Callable[[Path], None]] = {
    "photo-ladybird-5120x3200.jpg": _upscaled_with_grain(SEEDS[0], 2, grain_seed=1),
    "photo-wood-portrait-2880x3840.jpg": _upscaled_with_grain(SEEDS[1], 2, grain_seed=2),
    "photo-yellowflower-960x540.png": _downscaled(SEEDS[2], (960, 540), "[compression=6]"),
    "photo-ladybird-alpha-800x500.png": _soft_alpha(SEEDS[0], (800, 500)),
    "photo-wood-960x1280.webp": _downscaled(SEEDS[1], (960, 1280), "[Q=85]"),
}
"""Derived image -> how it is made (its name says its size, which the manifest checks)."""


def _fingerprint() -> str:
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for seed in SEEDS:
        digest.update((HERE / seed).read_bytes())
    return digest.hexdigest()[:16]


def _write_manifest(folder: Path) -> None:
    pyvips = _vips()
    rows = ["file\tformat\twidth\theight\tbytes"]
    for name in sorted(os.listdir(folder)):
        if name == MANIFEST:
            continue
        image = pyvips.Image.new_from_file(str(folder / name))
        loader = image.get("vips-loader")
        fmt = {"jpegload": "jpeg", "pngload": "png", "webpload": "webp"}[loader]
        size = (folder / name).stat().st_size
        if f"-{image.width}x{image.height}." not in name:
            raise RuntimeError(f"{name} is {image.width}x{image.height}: its name must say so")
        rows.append(f"{name}\t{fmt}\t{image.width}\t{image.height}\t{size}")
    (folder / MANIFEST).write_text("\n".join(rows) + "\n")


def test_images_dir() -> Path:
    """The folder holding the whole set and its MANIFEST.tsv, built on first use."""
    target = Path(tempfile.gettempdir()) / f"imgpro-test-images-{_fingerprint()}"
    if (target / MANIFEST).exists():
        return target
    staging = Path(tempfile.mkdtemp(prefix="imgpro-test-images-", dir=target.parent))
    try:
        for seed in SEEDS:
            shutil.copyfile(HERE / seed, staging / seed)
        for name, build in BUILT.items():
            build(staging / name)
        _write_manifest(staging)
        try:
            staging.rename(target)
        except OSError:  # another process was first: its set is the same one
            if not (target / MANIFEST).exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


test_images_dir.__test__ = False  # type: ignore[attr-defined]  # not a test, despite the name


if __name__ == "__main__":
    folder = test_images_dir()
    print(folder)
    print((folder / MANIFEST).read_text(), end="")
