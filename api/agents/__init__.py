"""The MCP server for agents: the /v1 API as Model Context Protocol tools.

Two transports, one set of tools (``api.agents.tools``), each tool one API call:
- stdio, ``imgpro mcp`` (``api.agents.stdio_command``): a desktop agent starts it; it is a
  client of an imgpro server over HTTP, configured like ``imgpro upload``;
- streamable HTTP under ``/mcp`` of ``imgpro serve`` (``api.agents.http_endpoint``): the same
  bearer key as the API, and the calls go into the API app in-process.

Nothing here is imported by the CDN or by ``imgpro serve``'s supervisor; the SDK is loaded by
an API worker on the first ``/mcp`` request.
"""
