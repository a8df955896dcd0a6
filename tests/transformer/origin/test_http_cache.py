from __future__ import annotations

import pytest

from transformer.origin.http_cache import is_not_modified

ETAG = b'"abc123"'


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        (b"", False),
        (b'"abc123"', True),
        (b'W/"abc123"', True),
        (b'"zzz", "abc123"', True),
        (b'"zzz" ,W/"abc123" ', True),
        (b"*", True),
        (b'"abc12"', False),
        (b"abc123", False),
    ],
)
def test_if_none_match(header: bytes | None, expected: bool) -> None:
    assert is_not_modified(header, ETAG) is expected
