"""POST /v1/keys: an account and an API key in one request, no browser needed.

- A new email gets an account, its team, and an ACTIVE key at once; a verification link is
  mailed (verification makes storage permanent).
- An email that already has an account gets a PENDING key: it works once the owner of the
  address opens the link mailed to it and presses the button on that page (a GET never
  activates: mail scanners prefetch links). Otherwise anyone who knows an address could mint
  a key for its owner's images. Confirming also verifies the account, since it proves the
  same thing (control of the mailbox). A pending key expires after ``PENDING_KEY_SECONDS``.
- The 201 reads nothing of an existing account: it differs from a new account's answer only
  in ``status`` (and the message that says what the status means), so the endpoint cannot be
  used to learn whether an address has an account, its plan or its verification state.
  ``verified`` and ``limits`` are those of a new account in both cases; GET /v1/usage tells
  the real ones once the key works.
- Pending keys take none of the account's key slots, so requests in someone else's name
  cannot lock the owner out. As activating one verifies the account, an unverified account
  only ever holds the one key it was created with: the reference's 403 key_limit_reached
  (3 keys while unverified) is never reached here. 5 keys per email and 20 per IP per hour
  (429); registration can be closed by configuration (403).
- The emails carry no text the requester chose (not the key's name): only our own words,
  the server-made key id and abilities, and the link.

The key is shown once; only its SHA-256 is stored.
"""

from __future__ import annotations

import logging
from html import escape
from typing import Any
from urllib.parse import urlencode

from email_validator import EmailNotValidError, validate_email
from starlette.requests import Request
from starlette.responses import Response

from api.auth import ABILITIES
from api.context import ApiContext, context_of
from api.db.accounts import count_key, ensure_account, insert_key, team_of_account
from api.errors import InvalidRequest, RegistrationClosed, action, json_response
from api.intake.request_json import read_json_object
from api.mail import send_mail
from api.rules.client_ip import client_ip
from api.rules.ids import hash_api_key, new_api_key, new_key_id
from api.rules.plans import MB, PENDING_KEY_SECONDS, PLANS, RETENTION_DAYS
from api.rules.rate_limits import KEYS_PER_EMAIL, KEYS_PER_IP, hit

log = logging.getLogger("imgpro.api")

VERIFY_LINK_MAX_AGE = 30 * 86_400
"""How long the verification link of a new account works (activation links: a pending key's
lifetime, ``PENDING_KEY_SECONDS``)."""

NEW_ACCOUNT_TERMS = {
    "verified": False,
    "limits": {
        "uploads": PLANS["free"].uploads_per_month,
        "storage_mb": PLANS["free"].storage_bytes // MB,
        "retention_days": RETENTION_DAYS,
    },
}
"""What every 201 says besides the key and its status: a new account's terms, also for a
pending key, whose answer must not tell anything about the account it was asked for."""


def parse_email(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest.field("email", "The email field is required.")
    try:
        checked = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidRequest.field("email",
                                   f"The email must be a valid email address: {exc}") from None
    return checked.normalized.lower()


def parse_key_name(value: Any) -> str:
    if value is None:
        return "Default"
    if (not isinstance(value, str) or not value.strip() or len(value.strip()) > 100
            or not value.isprintable()):
        raise InvalidRequest.field("name", "The name must be 1-100 printable characters.")
    return value.strip()


def parse_abilities(value: Any) -> str:
    """``["read", "write"]`` (default) or a subset, as a list or a comma-separated string."""
    if value is None:
        return ",".join(ABILITIES)
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise InvalidRequest.field("abilities", "Abilities must be a list of 'read' and 'write'.")
    chosen = {i.strip() for i in items if i.strip()}
    if not chosen or not chosen <= set(ABILITIES):
        raise InvalidRequest.field("abilities",
                                   "Abilities must be a non-empty subset of read, write.")
    return ",".join(a for a in ABILITIES if a in chosen)


def verify_link(ctx: ApiContext, account_id: int, email: str, key_id: str | None = None) -> str:
    payload: dict[str, Any] = {"account": account_id, "email": email}
    if key_id is not None:
        payload["key"] = key_id
    token = ctx.signer.sign("verify", payload)
    return f"{ctx.settings.effective_public_url}/v1/verify?{urlencode({'token': token})}"


async def create_key(request: Request) -> Response:
    ctx = context_of(request)
    settings = ctx.settings
    if settings.registration == "closed":
        url = settings.registration_redirect_url or settings.effective_public_url
        raise RegistrationClosed(
            "Registration is closed on this server: ask its operator for an API key.",
            action=action("redirect", url=url, label="Go to dashboard"),
        )
    body = await read_json_object(request)
    email = parse_email(body.get("email"))
    name = parse_key_name(body.get("name"))
    abilities = parse_abilities(body.get("abilities"))
    now = ctx.now()
    if settings.rate_limits == "on":
        ip = client_ip(request.scope, settings.trusted_proxies)
        await hit(ctx.db, [(KEYS_PER_EMAIL, email), (KEYS_PER_IP, ip)], now)

    key = new_api_key()
    key_id = new_key_id()
    async with ctx.db.write() as conn:
        account, created = await ensure_account(conn, email, now)
        team = await team_of_account(conn, account["id"], now)
        status = "active" if created else "pending"
        await insert_key(conn, key_id=key_id, key_hash=hash_api_key(key),
                         account_id=account["id"], team_id=team["id"], name=name,
                         abilities=abilities, status=status, now=now)
        if created:
            await count_key(conn, account["id"])
    if created:
        await _mail_verification(ctx, account["id"], email)
        message = "Key active. Check your email to verify and unlock permanent storage."
    else:
        await _mail_activation(ctx, account["id"], email, key_id, abilities)
        message = ("Key pending: it works once the owner of this email address confirms it "
                   f"with the link we sent there (valid for {PENDING_KEY_SECONDS // 3600} hours).")
    return json_response({
        "key": key,
        "key_id": key_id,
        "status": status,
        **NEW_ACCOUNT_TERMS,
        "message": message,
    }, 201)


async def _mail_verification(ctx: ApiContext, account_id: int, email: str) -> None:
    link = verify_link(ctx, account_id, email)
    text = (f"Verify your email for imgpro to make your storage permanent: open this link and "
            f"press the button on the page.\n\n{link}\n\n"
            f"Until then, images are kept for {RETENTION_DAYS} days. If you did not ask for an "
            "API key, ignore this message.\n")
    await _send(ctx, email, "Verify your email for imgpro", text, link)


async def _mail_activation(ctx: ApiContext, account_id: int, email: str, key_id: str,
                           abilities: str) -> None:
    """Only our words, the server-made key id and abilities: never the requester's text."""
    link = verify_link(ctx, account_id, email, key_id)
    hours = PENDING_KEY_SECONDS // 3600
    text = (f"Someone asked for a new imgpro API key ({key_id}, abilities: "
            f"{abilities.replace(',', ', ')}) for the account of this address.\n"
            f"To activate it, open this link within {hours} hours and press the button on "
            f"the page:\n\n{link}\n\n"
            "If that was not you, ignore this message: the key stays inactive and is deleted "
            f"after {hours} hours.\n")
    await _send(ctx, email, "Activate your new imgpro API key", text, link)


async def _send(ctx: ApiContext, to: str, subject: str, text: str, link: str) -> None:
    first_line = text.split("\n", 1)[0]
    html = f'<p>{escape(first_line)}</p><p><a href="{escape(link)}">{escape(link)}</a></p>'
    try:
        await send_mail(ctx.settings, to=to, subject=subject, text=text, html=html)
    except Exception:  # the key exists either way; asking for another key sends a new link
        log.exception("could not write or send the email to %s", to)
