"""Outgoing email (account verification): always kept as an ``.eml`` file, sent when SMTP is set.

Why a file first: a self-hosted instance often has no mail relay, and an operator (or a test)
must still be able to find the verification link. Every message is written atomically to
``<data-dir>/outbox/<timestamp>-<id>.eml`` before any sending is tried, so a failing relay
loses nothing: the failure is logged and the file stays for the operator.

``IMGPRO_SMTP_URL`` chooses the relay (``api.rules.smtp_relay``); certificates are always
verified against the system's trust store.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING

import aiosmtplib

from api.rules.smtp_relay import SmtpRelay, parse_smtp_url

if TYPE_CHECKING:
    from api.settings import Settings

__all__ = ["send_mail"]

log = logging.getLogger("imgpro.mail")

OUTBOX_DIR_NAME = "outbox"


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
