"""What runs inside the refine lane's process (``origin.refine.LaneProcess``).

Kept apart so that the child, which unpickles these functions by module name, imports only the
transform library: no metrics, no caches, no server.
"""

from __future__ import annotations

import contextlib
import os

from transformer import Format, Size


def lower_priority() -> None:
    """Runs first in the child: the scheduler gives it only the CPU nothing else wants."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(19)
    import transformer

    transformer.configure()


def final_encode(original: bytes, size: Size | None, fmt: Format, max_pixels: int,
                 timeout: float) -> bytes:
    """The same transform as a miss, at the final encoder setting."""
    import transformer

    return transformer.transform(original, size, fmt, max_pixels=max_pixels, timeout=timeout,
                                 effort="final").data
