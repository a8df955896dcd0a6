from __future__ import annotations

import pytest
import pyvips

from transformer import configure
from transformer._engine import DEFAULT_VIPS_THREADS, ensure_initialised


def test_operation_cache_is_off() -> None:
    ensure_initialised()
    assert pyvips.cache_get_max() == 0
    assert pyvips.cache_get_max_mem() == 0


def test_configure_sets_libvips_threads() -> None:
    try:
        configure(vips_threads=2)
        assert pyvips.concurrency_get() == 2
    finally:
        configure(DEFAULT_VIPS_THREADS)
    assert pyvips.concurrency_get() == DEFAULT_VIPS_THREADS


def test_configure_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        configure(vips_threads=0)


def test_loaders_outside_the_allow_list_are_blocked() -> None:
    ensure_initialised()
    with pytest.raises(pyvips.Error):
        pyvips.Image.new_from_buffer(b"1,2,3\n4,5,6\n", "")  # csvload would accept this
    assert pyvips.Image.new_from_buffer(b"<svg xmlns='http://www.w3.org/2000/svg' width='4' "
                                        b"height='4'/>", "").width == 4
