from __future__ import annotations

import time

import pytest
import pyvips

from transformer import TransformTimeout
from transformer._deadline import Deadline


def test_no_limit_never_expires() -> None:
    deadline = Deadline(None)
    assert deadline.remaining() is None
    assert not deadline.expired()
    deadline.check()


def test_expiry() -> None:
    deadline = Deadline(0.01)
    time.sleep(0.02)
    assert deadline.expired()
    assert deadline.remaining() == 0
    with pytest.raises(TransformTimeout):
        deadline.check()


def test_watch_kills_a_running_libvips_computation() -> None:
    deadline = Deadline(0.01)
    image = pyvips.Image.gaussnoise(4000, 4000).gaussblur(8)
    deadline.watch(image)
    time.sleep(0.02)
    with pytest.raises(pyvips.Error):
        image.write_to_buffer(".png")
    assert deadline.killed


def test_rejects_non_positive_limits() -> None:
    with pytest.raises(ValueError):
        Deadline(0)
