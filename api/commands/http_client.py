"""How the client commands (``imgpro upload``, ``imgpro keys create``) reach an imgpro server.

They run on a user's machine, not in the server: the base URL and key come from flags, else
from the same Settings object (``IMGPRO_API_URL``, ``IMGPRO_API_KEY``), and errors are shown
the way the API words them (``code: message``), since that text is written for people.
"""

from __future__ import annotations

import argparse
from typing import Any

import httpx

from api.settings import Settings

USER_AGENT = "imgpro-cli/0.1"


def add_server_options(parser: argparse.ArgumentParser, *, with_key: bool) -> None:
    parser.add_argument("--api", metavar="URL", default=None,
                        help="server base URL (default: IMGPRO_API_URL, else http://127.0.0.1:8080)")
    if with_key:
        parser.add_argument("--key", default=None,
                            help="API key (default: IMGPRO_API_KEY; none: anonymous)")


def server_url(args: argparse.Namespace, settings: Settings) -> str:
    return str(args.api or settings.api_url or settings.own_url).rstrip("/")


def api_key(args: argparse.Namespace, settings: Settings) -> str | None:
    return getattr(args, "key", None) or settings.api_key or None


def error_text(response: httpx.Response) -> str:
    """``code: message`` from the reference's error shape, or the status line for anything else."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        text = f"{body['error']}: {body.get('message', '')}".rstrip(": ")
        errors = body.get("errors")
        if isinstance(errors, dict) and errors:
            details = "; ".join(
                f"{name}: {' '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
                for name, msgs in errors.items()
            )
            text += f" ({details})"
        return text
    return f"HTTP {response.status_code} {response.reason_phrase}".strip()
