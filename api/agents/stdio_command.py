"""``imgpro mcp``: the MCP server over stdio, for desktop agents (Claude Desktop, IDEs, ...).

The agent host starts this command and speaks MCP on its stdin/stdout; the tools call an
imgpro server over HTTP, found like ``imgpro upload`` finds it: ``--api`` / ``--key``, else
``IMGPRO_API_URL`` / ``IMGPRO_API_KEY``. Without a key only anonymous uploads, imports and
public reads work (the API answers the rest with ``unauthorized``, as a tool error). Logs go
to stderr: stdout belongs to the protocol.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import httpx

from api.commands.http_client import add_server_options, api_key, server_url
from api.settings import Settings

TIMEOUT = httpx.Timeout(300.0, connect=10.0)
"""Uploads of up to 70 MB over a slow link; a server that is down fails in seconds."""


def add_parser(sub: Any) -> None:
    """Register ``imgpro mcp`` on the ``imgpro`` command's subparsers."""
    parser = sub.add_parser(
        "mcp", help="run the MCP server for agents over stdio (a client of an imgpro server)",
        description="Serve the imgpro API as MCP tools on stdin/stdout, for an agent host to "
                    "start. The tools call the server given by --api (IMGPRO_API_URL) with the "
                    "key --key (IMGPRO_API_KEY). imgpro serve also offers them over streamable "
                    "HTTP at /mcp.",
    )
    add_server_options(parser, with_key=True)
    parser.set_defaults(func=main)


async def serve_stdio(base_url: str, key: str | None) -> None:
    from api.agents.api_client import ImgproApi
    from api.agents.tools import build_server

    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT) as http:
        api = ImgproApi(http, key, base_url)
        server = build_server(lambda ctx: api, local_files=True)
        await server.run_stdio_async()


def main(args: argparse.Namespace) -> int:
    settings = Settings()
    try:
        asyncio.run(serve_stdio(server_url(args, settings), api_key(args, settings)))
    except KeyboardInterrupt:
        return 130
    return 0
