"""HTTP validator logic, kept pure (the starlette ``staticfiles`` pattern)."""

from __future__ import annotations

IMMUTABLE = b"public, max-age=31536000, immutable"


def is_not_modified(if_none_match: bytes | None, etag: bytes) -> bool:
    """RFC 9110 If-None-Match: weak comparison, a list of tags, or ``*``."""
    if not if_none_match:
        return False
    if if_none_match.strip() == b"*":
        return True
    wanted = etag.removeprefix(b"W/")
    for candidate in if_none_match.split(b","):
        if candidate.strip().removeprefix(b"W/") == wanted:
            return True
    return False
