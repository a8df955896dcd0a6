"""The links we hand out: email verification / key activation, and plan upgrade.

They are opened in a browser, so they answer with small HTML pages, not JSON. The tokens are
signed (api/rules/signing.py) and carry what the link acts on, so any process or node can
serve them without shared session state.

Verification and activation change state, and mail scanners and link previewers GET every
link of a message, so a GET of ``/v1/verify`` only shows what the link would do and a button;
the button's form POSTs the token back (``confirm``), and only that verifies the account or
activates the key. The form needs no CSRF token of its own: the signed token it carries is
one, and the POST's ``Origin``, when present, must be ours (api/rules/same_origin.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from starlette.requests import Request
from starlette.responses import Response

from api.context import ApiContext, context_of
from api.db.accounts import (
    account_email,
    activate_key,
    key_status,
    team_account,
    verify_account,
)
from api.db.counters import team_usage
from api.intake.form_body import read_small_form
from api.routes.html_page import html_page, message_page
from api.routes.keys import VERIFY_LINK_MAX_AGE
from api.rules.plans import GB, PENDING_KEY_SECONDS, PLANS, RETENTION_DAYS, month_key, plan_named
from api.rules.quotas import UPGRADE_LINK_MAX_AGE
from api.rules.same_origin import origin_allowed
from api.rules.signing import BadSignature


@dataclass(frozen=True, slots=True)
class VerifyLink:
    """What a verification token names: an account (by id and email), maybe a pending key."""

    account_id: int
    email: str
    key_id: str | None


def _read_token(ctx: ApiContext, token: str) -> VerifyLink | None:
    try:
        payload = ctx.signer.unsign("verify", token, max_age=VERIFY_LINK_MAX_AGE)
        key = payload.get("key")
        return VerifyLink(int(payload["account"]), str(payload["email"]),
                          None if key is None else str(key))
    except (BadSignature, KeyError, TypeError, ValueError):
        return None


async def verify(request: Request) -> Response:
    """GET: the confirmation page (never a change: scanners fetch links too)."""
    ctx = context_of(request)
    token = request.query_params.get("token")
    if not token:
        return message_page(
            "Verify your email",
            "Open the link from the email we sent when you created your API key. If you cannot "
            "find it, creating a key again with the same email sends a new one.",
        )
    link = _read_token(ctx, token)
    if link is None:
        return _invalid_link()
    async with ctx.db.read() as conn:
        if await account_email(conn, link.account_id) != link.email:
            return _invalid_link()
        status = (await key_status(conn, link.key_id, link.account_id, _pending_since(ctx))
                  if link.key_id is not None else None)
    if link.key_id is None:
        return _confirm_page(
            "Verify your email", token,
            f"Confirm that {link.email} is yours to make the images of its imgpro account "
            "permanent.", "Verify my email")
    if status is None:
        return _expired_key()
    if status == "active":
        return message_page("Key already active", f"The API key {link.key_id} is active.")
    return _confirm_page(
        "Activate an API key", token,
        f"Someone asked for a new API key ({link.key_id}) for the imgpro account of "
        f"{link.email}. Activate it only if that was you: whoever holds the key can read and "
        "change this account's images. Activating also verifies the email.", "Activate the key")


async def confirm(request: Request) -> Response:
    """POST from the confirmation page: verify the account, and activate the key if named."""
    ctx = context_of(request)
    if not origin_allowed(request.headers.get("origin"), request.headers.get("host"),
                          ctx.settings.effective_public_url):
        return message_page("Not confirmed", "This form was sent from another site.", status=403)
    form = await read_small_form(request)
    link = _read_token(ctx, form.get("token", ""))
    if link is None:
        return _invalid_link()
    async with ctx.db.write() as conn:
        if await account_email(conn, link.account_id) != link.email:
            return _invalid_link()
        if link.key_id is not None:
            since = _pending_since(ctx)
            activated = await activate_key(conn, link.key_id, link.account_id, since)
            if not activated and await key_status(conn, link.key_id, link.account_id,
                                                  since) is None:
                return _expired_key()  # nothing changes: an expired request proves nothing
        await verify_account(conn, link.account_id, ctx.now())
    text = f"{link.email} is verified: your images are now stored permanently."
    if link.key_id is not None:
        text += f" The API key {link.key_id} is active."
    return message_page("Email verified", text)


def _pending_since(ctx: ApiContext) -> int:
    """Pending keys created before this instant have expired."""
    return ctx.now() - PENDING_KEY_SECONDS


def _confirm_page(title: str, token: str, text: str, button: str) -> Response:
    """The page behind a link: what confirming does, and a form that POSTs the token back to
    this same address (no ``action``: the page's own URL, whatever prefix a proxy adds)."""
    return html_page(title, (
        f"<h1>{escape(title)}</h1><p>{escape(text)}</p>"
        '<form method="post"><input type="hidden" name="token" '
        f'value="{escape(token)}"><button type="submit">{escape(button)}</button></form>'
    ))


def _expired_key() -> Response:
    hours = PENDING_KEY_SECONDS // 3600
    return message_page(
        "Link expired",
        f"This activation link has expired (keys not activated within {hours} hours are "
        "deleted). Ask for a new key.", status=400)


async def upgrade(request: Request) -> Response:
    """The upgrade link of a quota error, or (without a token) how anonymous users register."""
    ctx = context_of(request)
    token = request.query_params.get("token")
    plans_table = _plans_table()
    if not token:
        public = escape(ctx.settings.effective_public_url)
        return html_page("Keep your images", (
            "<h1>Keep your images</h1>"
            f"<p>Anonymous uploads are deleted after {RETENTION_DAYS} days. Create a free API key "
            "with your email, then open the verification link we send you:</p>"
            f"<pre><code>curl -X POST {public}/v1/keys -H 'Content-Type: application/json' "
            "-d '{\"email\": \"you@example.com\"}'</code></pre>" + plans_table
        ))
    try:
        payload = ctx.signer.unsign("upgrade", token, max_age=UPGRADE_LINK_MAX_AGE)
        team_hash = str(payload["team"])
        wanted = plan_named(str(payload["plan"]))
    except (BadSignature, KeyError, TypeError, ValueError):
        return _invalid_link()
    async with ctx.db.read() as conn:
        team = await team_account(conn, team_hash)
        if team is None:
            return _invalid_link()
        uploads, stored = await team_usage(conn, team["team_id"], month_key(ctx.now()))
    email = team["email"]
    current = plan_named(team["plan"])
    return html_page("Upgrade your plan", (
        f"<h1>Upgrade {escape(email)} to {escape(wanted.name.capitalize())}</h1>"
        f"<p>Current plan: <b>{escape(current.name)}</b> - {uploads} of "
        f"{current.uploads_per_month} uploads this month, {stored / GB:.2f} of "
        f"{current.storage_bytes / GB:.0f} GB stored.</p>"
        "<p>Plans on this server are set by its operator. Send them this page's address, or "
        f"ask them to run <code>imgpro accounts set-plan {escape(email)} "
        f"{escape(wanted.name)}</code>.</p>" + plans_table
    ))


def _plans_table() -> str:
    rows = "".join(
        f"<tr><td>{p.name.capitalize()}</td><td>{p.uploads_per_month:,}/month</td>"
        f"<td>{p.storage_bytes // GB:,} GB</td><td>{p.max_file_bytes // (1024 * 1024)} MB</td></tr>"
        for p in PLANS.values()
    )
    return ("<table><tr><th>Plan</th><th>Uploads</th><th>Storage</th><th>Max file</th></tr>"
            f"{rows}</table>")


def _invalid_link() -> Response:
    return message_page("Link not valid", "This link is invalid or has expired.", status=400)
