"""Signed, expiring tokens for links we mail or hand out (email verification, one-click upgrade).

Why signed tokens rather than rows in the database: a link must keep working on every node and
worker without a lookup, and must be impossible to forge or to reuse for another purpose. The
purpose is the itsdangerous *salt*, so a token minted for "verify" never unsigns as "upgrade".

The secret comes from ``IMGPRO_SECRET_KEY`` or, when unset, from ``<data-dir>/secret.key``, made
once: every process that shares the data dir (``--workers N``) or the variable (several nodes)
agrees on it, so a link minted by one process verifies in any other.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Any

from itsdangerous import BadData, URLSafeTimedSerializer

from api.settings import Settings

__all__ = ["BadSignature", "Signer", "load_secret"]

SECRET_FILE_NAME = "secret.key"


class BadSignature(Exception):
    """A token that is tampered with, malformed, minted for another purpose, or expired.

    Callers need one exception for "this link is no good"; why it is no good stays in the
    message for logs and never reaches the client in more detail than that.
    """


class Signer:
    """Mints and checks URL-safe, timestamped tokens carrying a small JSON object."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("a signing secret must not be empty")
        self._secret = secret

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        if not purpose:
            raise ValueError("a token purpose must not be empty")
        return URLSafeTimedSerializer(self._secret, salt=f"imgpro.{purpose}")

    def sign(self, purpose: str, payload: dict[str, Any]) -> str:
        """A token for ``payload`` valid only for ``purpose`` (JSON-serialisable values only)."""
        return str(self._serializer(purpose).dumps(payload))

    def unsign(self, purpose: str, token: str, max_age: int | None = None) -> dict[str, Any]:
        """The payload of a token minted by :meth:`sign` for ``purpose``, at most ``max_age`` s old.

        Raises :class:`BadSignature` for anything else, including garbage that is not a token.
        """
        try:
            payload = self._serializer(purpose).loads(token, max_age=max_age)
        except BadData as exc:
            raise BadSignature(f"invalid {purpose} token: {exc}") from exc
        except (TypeError, ValueError, UnicodeError) as exc:  # non-str input, odd encodings
            raise BadSignature(f"invalid {purpose} token: {exc}") from exc
        if not isinstance(payload, dict):
            raise BadSignature(f"invalid {purpose} token: payload is not an object")
        return payload


def load_secret(settings: Settings) -> str:
    """``IMGPRO_SECRET_KEY``, else the data dir's ``secret.key``, created on first use.

    Creation is atomic and first-writer-wins: the secret is written in full to a private temp
    file which is then hard-linked to the final name. ``link`` fails if the name exists, so when
    two processes start together exactly one secret wins and both read that one back; a reader
    never sees a half-written file. The file is 0600 (created so, never chmod-ed later).
    """
    if settings.secret_key:
        return settings.secret_key
    path = settings.data_dir / SECRET_FILE_NAME
    if not path.exists():
        _create_secret_file(path)
    secret = path.read_text(encoding="ascii").strip()
    if len(secret) < 32:
        raise RuntimeError(
            f"{path} holds no usable secret (fewer than 32 characters); delete it to make a new one"
            " (this invalidates links already sent) or set IMGPRO_SECRET_KEY"
        )
    return secret


def _create_secret_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_urlsafe(48) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):  # another process won the race: use theirs
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
