"""The one-click links we hand out: email verification / key activation, and plan upgrade.

Both are GET links opened in a browser, so they answer with small HTML pages, not JSON. The
tokens are signed (api/signing.py) and carry what the link acts on, so any process or node
can serve them without shared session state.
"""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import Response

from api.context import context_of
from api.db.accounts import account_email, activate_key, team_account, verify_account
from api.db.counters import team_usage
from api.routes.html_page import html_page, message_page
from api.routes.keys import VERIFY_LINK_MAX_AGE
from api.rules.plans import GB, PLANS, RETENTION_DAYS, month_key, plan_named
from api.rules.quotas import UPGRADE_LINK_MAX_AGE
from api.rules.signing import BadSignature


async def verify(request: Request) -> Response:
    ctx = context_of(request)
    token = request.query_params.get("token")
    if not token:
        return message_page(
            "Verify your email",
            "Open the link from the email we sent when you created your API key. If you cannot "
            "find it, creating a key again with the same email sends a new one.",
        )
    try:
        payload = ctx.signer.unsign("verify", token, max_age=VERIFY_LINK_MAX_AGE)
        account_id = int(payload["account"])
        email = str(payload["email"])
    except (BadSignature, KeyError, TypeError, ValueError):
        return _invalid_link()
    async with ctx.db.write() as conn:
        if await account_email(conn, account_id) != email:
            return _invalid_link()
        await verify_account(conn, account_id, ctx.now())
        activated = "key" in payload and await activate_key(conn, str(payload["key"]), account_id)
    title = "Email verified"
    text = f"{email} is verified: your images are now stored permanently."
    if activated:
        text += f" The API key {payload['key']} is now active."
    return message_page(title, text)


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
