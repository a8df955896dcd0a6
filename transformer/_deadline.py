"""Abandoning a transform that runs past its time limit.

libvips evaluates lazily: the decode, resize and encode all happen while the saver pulls
pixels. With progress reporting on, libvips emits an ``eval`` signal as each batch of tiles is
computed; our handler sets the image's kill flag once the deadline has passed, libvips stops
at the next tile and the saver fails. The thread is then free again, which is the point: a
stuck transform must not hold a worker of a small pool forever.

Work that libvips cannot interrupt (Pillow's decode of a BMP or HEVC HEIC, the AV1 encoder
once it has all pixels) is bounded by the pixel limit instead and checked between steps.
"""

from __future__ import annotations

import time

import pyvips

from transformer._errors import TransformTimeout


class Deadline:
    """A point in monotonic time after which the current transform is abandoned."""

    def __init__(self, seconds: float | None) -> None:
        if seconds is not None and seconds <= 0:
            raise ValueError(f"timeout must be positive, got {seconds}")
        self.seconds = seconds
        self.expires = None if seconds is None else time.monotonic() + seconds
        self.killed = False

    def remaining(self) -> float | None:
        """Seconds left (never negative), or None without a limit."""
        if self.expires is None:
            return None
        return max(0.0, self.expires - time.monotonic())

    def expired(self) -> bool:
        return self.expires is not None and time.monotonic() >= self.expires

    def check(self) -> None:
        """Raise ``TransformTimeout`` if the deadline has passed."""
        if self.expired():
            raise self.timeout_error()

    def timeout_error(self) -> TransformTimeout:
        return TransformTimeout(f"transform took longer than the {self.seconds} s limit")

    def watch(self, image: pyvips.Image) -> None:
        """Make libvips stop computing ``image`` once the deadline passes."""
        if self.expires is None:
            return
        image.set_progress(True)
        image.signal_connect("eval", self._on_eval)

    def _on_eval(self, image: pyvips.Image, progress: object) -> None:
        if self.expired():
            self.killed = True
            image.set_kill(True)
