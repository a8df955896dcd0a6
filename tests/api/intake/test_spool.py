"""SpooledBody: small bodies stay in memory, large ones go to an unnamed file; the probe and the
store read them back without a copy of the whole body."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from api.errors import ServiceUnavailable
from api.intake.body_budget import BodyBudget
from api.intake.spool import SPOOL_ABOVE, SpooledBody
from tests.transformer import sample_images as samples


async def collect(body: SpooledBody) -> bytes:
    payload = body.payload()
    if isinstance(payload, bytes):
        return payload
    return b"".join([block async for block in payload])


async def test_small_body_stays_in_memory(tmp_path: Path) -> None:
    data = samples.png()
    async with SpooledBody(tmp_path) as body:
        await body.write(data[:10])
        await body.write(data[10:])
        await body.finish()
        assert not body.spooled and body.size == len(data)
        assert body.probe(max_pixels=10**8).format == "png"
        assert await collect(body) == data
    assert not any(tmp_path.iterdir())


async def test_large_body_is_spooled_to_an_unnamed_file(tmp_path: Path) -> None:
    data = samples.png() + os.urandom(3 * SPOOL_ABOVE)  # a PNG followed by noise: still a PNG
    async with SpooledBody(tmp_path) as body:
        for start in range(0, len(data), 65536):
            await body.write(data[start:start + 65536])
        await body.finish()
        assert body.spooled and body.size == len(data)
        assert list(tmp_path.iterdir()) == []  # O_TMPFILE: nothing to leave behind on a crash
        assert body.probe(max_pixels=10**8).format == "png"
        assert await collect(body) == data


async def test_reset_forgets_what_was_received(tmp_path: Path) -> None:
    async with SpooledBody(tmp_path) as body:
        await body.write(os.urandom(2 * SPOOL_ABOVE))
        await body.reset()
        await body.write(b"second")
        await body.finish()
        assert body.size == 6 and await collect(body) == b"second"


async def test_reservation_is_returned_on_close(tmp_path: Path) -> None:
    budget = BodyBudget(100 * SPOOL_ABOVE, wait=1)
    async with SpooledBody(tmp_path, budget, max_bytes=5 * SPOOL_ABOVE) as body:
        await body.expect(None)
        assert budget.reserved == 5 * SPOOL_ABOVE
        await body.expect(10 * SPOOL_ABOVE)  # never more than the largest allowed
        assert budget.reserved == 5 * SPOOL_ABOVE
    assert budget.reserved == 0


async def test_a_full_spool_disk_is_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import api.intake.spool as spool

    def full(file: object, block: bytearray) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool, "_write_all", full)
    async with SpooledBody(tmp_path) as body:
        with pytest.raises(ServiceUnavailable) as refused:
            await body.write(os.urandom(2 * SPOOL_ABOVE))
    assert refused.value.status == 503 and "Retry-After" in refused.value.headers
