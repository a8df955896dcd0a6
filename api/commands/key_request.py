"""``imgpro keys create --email E [--name N]``: ask a server for an API key from the terminal.

The same request as ``POST /v1/keys`` with curl, for people who prefer a command: it prints
the key (shown once by the server, so it says so loudly), what to do next, and exits non-zero
with the API's own message when the server refuses.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import httpx
import orjson

from api.commands.http_client import USER_AGENT, add_server_options, error_text, server_url
from api.settings import Settings


def create_key(api: str, email: str, name: str | None) -> tuple[int, dict[str, Any] | str]:
    """(status, body) on 201, else (status, ``code: message``); status 0 when unreachable."""
    body: dict[str, Any] = {"email": email}
    if name:
        body["name"] = name
    try:
        with httpx.Client(base_url=api, timeout=30, headers={"User-Agent": USER_AGENT}) as client:
            response = client.post("/v1/keys", json=body)
    except httpx.HTTPError as exc:
        return 0, f"cannot reach {api}: {type(exc).__name__}: {exc}".rstrip(": ")
    if response.status_code == 201:
        return 201, dict(response.json())
    return response.status_code, error_text(response)


def describe_key(created: dict[str, Any]) -> str:
    limits = created.get("limits") or {}
    retention = limits.get("retention_days")
    lines = [
        f"API key (shown once, store it now): {created['key']}",
        f"key id: {created.get('key_id')}   status: {created.get('status')}   "
        f"verified: {str(created.get('verified')).lower()}",
        f"limits: {limits.get('uploads')} uploads/month, {limits.get('storage_mb')} MB storage, "
        + (f"{retention}-day retention until verified" if retention else "permanent storage"),
        str(created.get("message", "")),
        "Use it: export IMGPRO_API_KEY=<key>, then imgpro upload PATH...",
    ]
    return "\n".join(line for line in lines if line)


def add_parser(sub: Any) -> None:
    """Register ``imgpro keys create`` on the ``imgpro`` command's subparsers."""
    keys = sub.add_parser("keys", help="API keys")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser("create", help="create an account and an API key (POST /v1/keys)")
    create.add_argument("--email", required=True,
                        help="your email; the verification link goes there")
    create.add_argument("--name", default=None, help='key name (default "Default")')
    create.add_argument("--json", action="store_true", help="print the server's JSON answer")
    add_server_options(create, with_key=False)
    create.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    status, result = create_key(server_url(args, Settings()), args.email, args.name)
    if isinstance(result, str):
        print(f"imgpro keys create: {result}", file=sys.stderr)
        return 1
    print(orjson.dumps(result).decode() if args.json else describe_key(result))
    return 0
