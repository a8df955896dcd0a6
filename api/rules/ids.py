"""Random public identifiers: media ids, team hashes, key ids and the API keys themselves.

Media ids share the URL space with fixed top-level routes (``/healthz``, ``/v1``, ...), since
the viewer page is ``/{id}``; they are 12 base62 characters and never one of ``RESERVED``.
API keys are 256-bit random secrets, so a plain SHA-256 is the right stored form (no salt or
slow hash needed: nothing can be guessed), and lookup by hash stays a single index probe.
"""

from __future__ import annotations

import hashlib
import secrets
import string

BASE62 = string.digits + string.ascii_letters
MEDIA_ID_LENGTH = 12
TEAM_HASH_LENGTH = 10
KEY_PREFIX = "img_live_"

RESERVED = frozenset({
    "healthz", "metrics", "openapi.yaml", "openapi", "v1", "static", "favicon.ico", "robots.txt",
    "upload", "api", "docs", "verify", "upgrade", "admin", "login", "assets", "library", "mcp",
})


def _random(length: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(length))


def new_media_id() -> str:
    while True:
        candidate = _random(MEDIA_ID_LENGTH)
        if candidate.lower() not in RESERVED:
            return candidate


def new_team_hash() -> str:
    return _random(TEAM_HASH_LENGTH)


def new_key_id() -> str:
    return "key_" + _random(10)


def new_api_key() -> str:
    return KEY_PREFIX + _random(43)  # 43 base62 characters carry 256 bits


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_media_id(value: str) -> bool:
    """Cheap shape check before any query (the viewer route matches every one-segment path)."""
    return len(value) == MEDIA_ID_LENGTH and all(c in BASE62 for c in value)
