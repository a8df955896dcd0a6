"""A byte budget for decodes that must hold a whole image in memory.

Most inputs stream through libvips a few scanlines at a time: baseline JPEG (with shrink-on-load),
non-interlaced PNG, TIFF, SVG. Others cannot: libjpeg keeps every DCT coefficient of a
progressive JPEG (several times the memory of the same picture as baseline; README, "Limits
and errors", has the measurement), libspng reads an interlaced PNG whole, libnsgif keeps a
full frame, libwebp and libheif decode whole frames, and Pillow decodes a BMP whole.

Such decodes reserve an estimate of their bytes from one process-wide budget and wait (within
their deadline) while it is spent, so that a burst of large progressive JPEGs queues instead
of multiplying a few hundred megabytes by the number of threads. One reservation larger than
the whole budget may still run, alone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from transformer._deadline import Deadline
from transformer._errors import TransformTimeout


class MemoryBudget:
    """Counting reservations of bytes against a fixed capacity; thread-safe."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.reserved = 0
        self._changed = threading.Condition()

    def _fits(self, nbytes: int) -> bool:
        return self.reserved == 0 or self.reserved + nbytes <= self.capacity

    @contextmanager
    def reserve(self, nbytes: int, deadline: Deadline) -> Iterator[None]:
        """Hold ``nbytes`` of the budget for the ``with`` block; ``TransformTimeout`` if the
        deadline passes while waiting."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._fits(nbytes), deadline.remaining()):
                raise TransformTimeout("timed out waiting for decode memory (large images that "
                                       "cannot be decoded as a stream take turns)")
            self.reserved += nbytes
        try:
            yield
        finally:
            with self._changed:
                self.reserved -= nbytes
                self._changed.notify_all()
