"""The pure rules under the API (no server): plan arithmetic, field parsing, windows, sizes.

The HTTP tests exercise these on today's date; here the edges a test run cannot wait for
(December -> January, window boundaries) are checked directly.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.db.engine import normalise_database_url
from api.errors import InvalidRequest
from api.intake.upload_form import looks_like_svg
from api.routes.batch import new_tags
from api.routes.viewer import rendition_width
from api.rules.media_fields import display_name, parse_date, parse_media_fields, parse_tags
from api.rules.plans import MB, max_file_bytes, month_key, month_resets_at, next_plan
from api.rules.rate_limits import ANONYMOUS_UPLOADS_DAILY, ANONYMOUS_UPLOADS_HOURLY


def ts(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())  # type: ignore[misc]


def test_month_windows() -> None:
    assert month_key(ts(2025, 12, 31, 23, 59, 59)) == "2025-12"
    assert month_key(ts(2026, 1, 1)) == "2026-01"
    assert month_resets_at(ts(2025, 12, 31, 23, 59, 59)) == ts(2026, 1, 1)
    assert month_resets_at(ts(2026, 1, 1)) == ts(2026, 2, 1)
    assert month_resets_at(ts(2024, 2, 29, 12)) == ts(2024, 3, 1)


def test_plans() -> None:
    assert next_plan("free").name == "pro"  # type: ignore[union-attr]
    assert next_plan("scale").name == "max"  # type: ignore[union-attr]
    assert next_plan("max") is None
    assert max_file_bytes(authenticated=False, svg=False) == 20 * MB
    assert max_file_bytes(authenticated=True, svg=False) == 70 * MB
    assert max_file_bytes(authenticated=True, svg=True) == 10 * MB
    assert max_file_bytes(authenticated=False, svg=True) == 10 * MB


def test_rate_windows_are_aligned() -> None:
    moment = ts(2026, 3, 4, 10, 59, 59)
    assert ANONYMOUS_UPLOADS_HOURLY.start(moment) == ts(2026, 3, 4, 10)
    assert ANONYMOUS_UPLOADS_HOURLY.reset(moment) == ts(2026, 3, 4, 11)
    assert ANONYMOUS_UPLOADS_DAILY.reset(moment) == ts(2026, 3, 5)
    # A new window is a new counter key.
    assert ANONYMOUS_UPLOADS_HOURLY.key("1.2.3.4", moment) != ANONYMOUS_UPLOADS_HOURLY.key(
        "1.2.3.4", moment + 1)


@pytest.mark.parametrize(("text", "expected"), [
    ("2025-06-15", ts(2025, 6, 15)),
    ("2025-06-15T12:30:00Z", ts(2025, 6, 15, 12, 30)),
    ("2025-06-15T14:30:00+02:00", ts(2025, 6, 15, 12, 30)),
    ("1700000000", 1700000000),
    ("1700000000.9", 1700000000),
    (1700000000, 1700000000),
    ("", None),
    (None, None),
])
def test_dates(text: object, expected: int | None) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize("bad", ["15/06/2025", "yesterday", True, "9" * 30, float("nan"), [1],
                                 "1" * 400, "1" * 400 + ".5", 10**400, float("inf")])
def test_bad_dates(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_date(bad)


def test_tags_and_batch_modes() -> None:
    assert parse_tags(" a, b,,a ,c ") == ["a", "b", "c"]
    assert parse_tags(["x", "y", "x"]) == ["x", "y"]
    assert parse_tags(None) == []
    assert new_tags(["a", "b"], ["b", "c"], "add") == ["a", "b", "c"]
    assert new_tags(["a", "b"], ["b", "c"], "remove") == ["a"]
    assert new_tags(["a", "b"], ["c"], "replace") == ["c"]


def test_custom_fields_become_metadata() -> None:
    raw = {"name": "n", "author": "Jane", "metadata": '{"author": "x", "k": 1}', "file": "x"}
    fields = parse_media_fields(raw, allow_ttl=False)
    assert fields == {"name": "n", "metadata": {"author": "Jane", "k": 1}}


def test_display_names() -> None:
    assert display_name("photo.jpg") == "photo.jpg"
    assert display_name("a\x00b\x1fc.png") == "abc.png"
    assert display_name("x" * 400) == "x" * 255
    assert display_name("\x00\x01") is None


def test_database_urls() -> None:
    assert normalise_database_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalise_database_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalise_database_url("sqlite:////tmp/x.db") == "sqlite+aiosqlite:////tmp/x.db"
    assert normalise_database_url("postgresql+asyncpg://h/db") == "postgresql+asyncpg://h/db"


def test_rendition_widths_never_upscale() -> None:
    assert rendition_width(2560, 1600, 320) == 512  # landscape: short edge is the height
    assert rendition_width(1600, 2560, 320) == 320  # portrait: short edge is the width
    assert rendition_width(200, 100, 320) == 200  # smaller than the target: original width


def test_svg_sniffing() -> None:
    assert looks_like_svg(b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg">')
    assert looks_like_svg(b"\xef\xbb\xbf  <svg width='1'>")
    assert not looks_like_svg(b"\x89PNG\r\n\x1a\n")
    assert not looks_like_svg(b"<html><body><svg></svg></body></html>")


@pytest.mark.parametrize("ttl", ["9" * 5000, "\u00b2", "1e9", "-3600", 3599, True])
def test_bad_ttls_are_field_errors(ttl: object) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_media_fields({"ttl": ttl}, allow_ttl=True)
    assert "ttl" in info.value.errors
