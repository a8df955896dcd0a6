"""Outgoing email (account verification): always kept as an ``.eml`` file, sent when SMTP is set.

Why a file first: a self-hosted instance often has no mail relay, and an operator (or a test)
must still be able to find the verification link. Every message is written atomically to
``<data-dir>/outbox/<timestamp>-<id>.eml`` before any sending is tried, so a failing relay
loses nothing: the failure is logged and the file stays for the operator.

``IMGPRO_SMTP_URL`` chooses the relay::

    smtp://[user:password@]host[:port]             plain SMTP (port 25)
    smtp://[user:password@]host[:port]?starttls=1  STARTTLS required (port 587)
    smtps://[user:password@]host[:port]            implicit TLS (port 465)

User and password are percent-decoded. TLS certificates are always verified against the
system's trust store.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

if TYPE_CHECKING:
    from api.settings import Settings

__all__ = ["DEFAULT_MAIL_FROM", "SmtpRelay", "parse_smtp_url", "send_mail"]

log = logging.getLogger("imgpro.mail")

DEFAULT_MAIL_FROM = "imgpro <no-reply@localhost>"
OUTBOX_DIR_NAME = "outbox"
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


async def send_mail(
    settings: Settings, *, to: str, subject: str, text: str, html: str | None = None
) -> Path:
    """Write the message to the outbox, send it if SMTP is configured; return the ``.eml`` path.

    Raises ``ValueError`` for header injection attempts (a newline in ``to`` or ``subject``),
    since those are bugs in the caller's validation. Never raises for delivery problems.
    """
    token = secrets.token_hex(8)
    message = _build_message(settings.mail_from, to, subject, text, html, token)
    path = await asyncio.to_thread(_write_to_outbox, settings.data_dir / OUTBOX_DIR_NAME,
                                   message, token)
    if settings.smtp_url:
        await _deliver(parse_smtp_url(settings.smtp_url), message, settings.smtp_timeout, path)
    return path


def _build_message(
    mail_from: str, to: str, subject: str, text: str, html: str | None, token: str
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    # Unique by the random token; the sender's domain, not make_msgid's default, which asks DNS
    # for our FQDN (seconds on a host without DNS) and makes IDs too long to fit one line.
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = f"<{token}.{int(time.time())}@{domain}>"
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


def _write_to_outbox(outbox: Path, message: EmailMessage, token: str) -> Path:
    """Temp file + fsync + rename: the outbox never holds a partial message."""
    outbox.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = outbox / f"{stamp}-{token}.eml"
    tmp = outbox / f".{path.name}.tmp"
    with tmp.open("wb") as fh:
        fh.write(message.as_bytes(policy=SMTP))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


async def _deliver(relay: SmtpRelay, message: EmailMessage, time_limit: float, path: Path) -> None:
    """Hand the message to the relay within ``time_limit`` seconds overall (not per command)."""
    try:
        async with asyncio.timeout(time_limit):
            await aiosmtplib.send(
                message,
                hostname=relay.hostname,
                port=relay.port,
                username=relay.username,
                password=relay.password,
                use_tls=relay.implicit_tls,
                start_tls=relay.starttls,
                timeout=time_limit,
            )
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        log.warning("could not send %s via %r (%s: %s); the message stays in the outbox",
                    path.name, relay, type(exc).__name__, exc)
    else:
        log.info("sent %s to %s via %r", path.name, message["To"], relay)
