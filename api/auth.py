"""Who is calling: the ``Authorization: Bearer img_live_...`` key, or nobody (anonymous).

A missing header is anonymous (upload and public reads allow it); a header that is present
but wrong is always 401, never a silent fall-back to anonymous. Abilities (read, write) are
checked here so handlers only say which one they need.
"""

from __future__ import annotations

from typing import Literal

from starlette.requests import Request

from api.context import context_of
from api.db.accounts import KeyOwner, key_owner
from api.errors import Forbidden, Unauthorized, action
from api.rules.ids import KEY_PREFIX, hash_api_key

Ability = Literal["read", "write"]
ABILITIES: tuple[Ability, ...] = ("read", "write")


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Use 'Authorization: Bearer <API key>'.")
    return token.strip()


async def optional_key(request: Request) -> KeyOwner | None:
    """The caller's key, None without an Authorization header; 401 for a bad or pending key."""
    cached = request.scope.get("imgpro.key_owner")
    if cached is not None:
        return cached
    token = bearer_token(request)
    if token is None:
        return None
    if not token.startswith(KEY_PREFIX):
        raise Unauthorized("Invalid API key.")
    ctx = context_of(request)
    key_hash = hash_api_key(token)
    owner = await ctx.db.fetch(lambda conn: key_owner(conn, key_hash))
    if owner is None:
        raise Unauthorized("Invalid API key.")
    if owner.key_status != "active":
        raise Unauthorized(
            "This key is not active yet: open the activation link we emailed to its owner.",
            action=action("verify", label="Check your email"),
        )
    request.scope["imgpro.key_owner"] = owner
    return owner


async def require_key(request: Request, ability: Ability) -> KeyOwner:
    owner = await optional_key(request)
    if owner is None:
        raise Unauthorized("This endpoint needs an API key: 'Authorization: Bearer <API key>'.")
    check_ability(owner, ability)
    return owner


def check_ability(owner: KeyOwner, ability: Ability) -> None:
    if ability not in owner.abilities:
        raise Forbidden(f"This API key does not have the '{ability}' ability.")
