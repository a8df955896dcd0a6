"""Where outgoing email goes: ``IMGPRO_SMTP_URL`` parsed into a relay, checked at start-up.

``IMGPRO_SMTP_URL`` chooses the relay::

    smtp://[user:password@]host[:port]             plain SMTP (port 25)
    smtp://[user:password@]host[:port]?starttls=1  STARTTLS required (port 587)
    smtps://[user:password@]host[:port]            implicit TLS (port 465)

User and password are percent-decoded. TLS certificates are always verified against the
system's trust store.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_MAIL_FROM = "imgpro <no-reply@localhost>"
_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})



@dataclass(frozen=True)
class SmtpRelay:
    """Where and how to hand messages over, parsed from ``IMGPRO_SMTP_URL``."""

    hostname: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool
    starttls: bool

    def __repr__(self) -> str:  # never print the password into a log
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{self.username}:***@" if self.username else ""
        return f"SmtpRelay({scheme}://{user}{self.hostname}:{self.port}, starttls={self.starttls})"


def parse_smtp_url(url: str) -> SmtpRelay:
    """Parse ``IMGPRO_SMTP_URL``; ``ValueError`` says what is wrong (Settings validates with it)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("IMGPRO_SMTP_URL must start with smtp:// or smtps://")
    if not parts.hostname:
        raise ValueError("IMGPRO_SMTP_URL has no host")
    try:
        explicit_port = parts.port
    except ValueError as exc:
        raise ValueError(f"IMGPRO_SMTP_URL has a bad port: {exc}") from None
    query = parse_qs(parts.query)
    starttls = query.get("starttls", ["0"])[-1].lower() in _TRUE_WORDS
    implicit_tls = parts.scheme == "smtps"
    if implicit_tls and starttls:
        raise ValueError("IMGPRO_SMTP_URL: smtps:// is already TLS; drop ?starttls=1")
    default_port = 465 if implicit_tls else 587 if starttls else 25
    return SmtpRelay(
        hostname=parts.hostname,
        port=explicit_port or default_port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        implicit_tls=implicit_tls,
        starttls=starttls,
    )
