"""The MCP tools: one per /v1 operation, with the reference's field names and limits.

Each tool makes one API call (two for ``cdn_urls``) through ``ImgproApi`` and returns the API's
JSON object as the result (text and ``structuredContent``). A refused call is an MCP tool
error (``isError``) whose content is the API's own error object, ``error`` / ``message`` /
``action`` (and ``errors`` for a 422), so an agent can act on it (wait, show the upgrade link)
as a program would. Arguments are checked twice: against the JSON schemas below (the limits an
agent sees before calling) and by the API itself; a tool whose arguments are wrong stores
nothing.

``upload_image`` reads a local ``path`` only over stdio, where "local" is the agent's own
machine; under ``/mcp`` that would be the server's disk, so that transport offers only
``data_base64`` (and ``import_image`` for URLs).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, InputRequiredResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.agents.api_client import Answer, ImgproApi, error_body
from api.rules.cdn_urls import cdn_urls as all_cdn_urls
from api.rules.plans import MB, max_file_bytes

ApiFor = Callable[[Context], ImgproApi]
"""The API as the caller of this tool request sees it (its key)."""

INSTRUCTIONS = """\
imgpro hosts images and serves them resized and converted by URL. Upload a file \
(upload_image) or import one from a URL (import_image); every image gets a viewer page (url) \
and a CDN URL (src); cdn_urls lists the URL of each size (s, m, l short edge 320/640/1080 px, \
or full) in each format (jpeg, png, webp, avif). Organise with namespaces and tags \
(update_media, batch_update_media), find with list_media. Errors carry the API's error code, \
message and, when there is something to do, an action (wait N seconds, or an upgrade or \
verification link to show to the user)."""

# ---- Argument types: the reference's limits, as JSON schema --------------------------------

MediaId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9]+$",
                               description="A media id, as upload, import and list return it.")]
Namespace = Annotated[str, Field(min_length=2, max_length=64,
                                 pattern=r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$",
                                 description="Project grouping: 2-64 characters, lowercase "
                                             "letters, digits and hyphens.")]
Tag = Annotated[str, Field(min_length=1, max_length=50)]
Tags = Annotated[list[Tag], Field(max_length=10)] | str
TAGS_HELP = "Tags: a list, or a comma-separated string; at most 10, each at most 50 characters."
DateValue = Annotated[str | int, Field(description="ISO 8601 date or date-time, or a Unix "
                                                   "timestamp; orders the list (newest first).")]
Ttl = Annotated[int, Field(ge=3600, description="Seconds until the image is deleted (at least "
                                                "3600). Needs an API key.")]
Metadata = Annotated[dict[str, Any], Field(description="Custom key-value pairs, returned at "
                                                       "the top level of the media.")]
Name = Annotated[str, Field(min_length=1, max_length=255, description="Display name.")]
ExternalId = Annotated[str, Field(min_length=1, max_length=255,
                                  description="Your own unique id: a second upload with it "
                                              "is refused as a duplicate. Needs an API key.")]
Ids = Annotated[list[MediaId], Field(min_length=1, max_length=100,
                                     description="Media ids, at most 100.")]
TagsArg = Annotated[Tags | None, Field(description=TAGS_HELP)]
Base64 = Annotated[str, Field(min_length=1, description="The file's bytes, base64.")]
LocalPath = Annotated[str, Field(min_length=1, description="A file on this machine.")]
FileName = Annotated[str, Field(min_length=1, max_length=255,
                                description="File name sent with data_base64 (default: image).")]


class MediaUpdate(BaseModel):
    """The fields to change; the ones left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    tags: Tags | None = Field(None, description=TAGS_HELP + " Replaces the image's tags.")
    namespace: Namespace | None = Field(None, description="New namespace; null removes it.")
    public: bool | None = Field(None, description="Whether the viewer page is public.")
    date: DateValue | None = Field(None, description="Custom date; null removes it.")
    external_id: ExternalId | None = Field(None, description="Your id; null removes it.")
    ttl: Ttl | None = None
    metadata: dict[str, Any] | None = Field(
        None, description="Keys to add or replace; a key set to null is removed.")


class BatchChange(BaseModel):
    """What to apply to every image of a batch (at least one field)."""

    model_config = ConfigDict(extra="forbid")

    tags: Tags | None = Field(None, description=TAGS_HELP)
    tag_mode: Literal["replace", "add", "remove"] | None = Field(
        None, description="How the tags apply: replace (default), add or remove.")
    namespace: Namespace | None = Field(None, description="Move to this namespace; null: none.")
    public: bool | None = Field(None, description="Set the visibility.")


# ---- Results ------------------------------------------------------------------------

def _result(body: dict[str, Any], *, error: bool = False) -> CallToolResult:
    text = json.dumps(body, ensure_ascii=False)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=body,
                          is_error=error)


def answered(answer: Answer) -> CallToolResult:
    """An API answer as the tool's result: its body, an error when the API refused."""
    return _result(answer.body, error=not answer.ok)


def invalid(field: str, message: str) -> CallToolResult:
    """A refusal before any call, in the API's own 422 shape."""
    return _result(error_body("validation_error", message, errors={field: [message]}),
                   error=True)


def _tags(value: list[str] | str | None) -> str | None:
    return ",".join(value) if isinstance(value, list) else value


def _fields(**values: Any) -> dict[str, Any]:
    """The optional fields that were given, as JSON values of the API."""
    out = {k: v for k, v in values.items() if v is not None}
    if "tags" in out:
        out["tags"] = _tags(out["tags"])
    return out


def _form(fields: dict[str, Any]) -> dict[str, str]:
    """Upload form fields: the multipart body carries strings (metadata as a JSON object)."""
    form = {}
    for key, value in fields.items():
        if key == "metadata":
            form[key] = json.dumps(value)
        elif isinstance(value, bool):
            form[key] = "true" if value else "false"
        else:
            form[key] = str(value)
    return form


def _read_local_file(path: str, authenticated: bool) -> tuple[bytes, str] | CallToolResult:
    """The bytes and file name of ``path``, or why not (the API's limits checked first, so a
    70 MB file that would be refused is not sent)."""
    file = Path(path).expanduser()
    try:
        size = file.stat().st_size
        if not file.is_file():
            return invalid("path", f"Not a file: {path}")
        limit = max_file_bytes(authenticated=authenticated, svg=file.suffix.lower() == ".svg")
        if size > limit:
            return _result(error_body("file_too_large", f"The file is {size:,} bytes, over the "
                                      f"size limit of {limit // MB} MB."), error=True)
        return file.read_bytes(), file.name
    except OSError as exc:
        return invalid("path", f"Cannot read {path}: {exc.strerror or exc}")


def _decode(data_base64: str) -> bytes | CallToolResult:
    try:
        data = base64.b64decode(data_base64.strip(), validate=True)
    except (binascii.Error, ValueError):
        return invalid("data_base64", "data_base64 is not valid base64.")
    if not data:
        return invalid("data_base64", "data_base64 decodes to no bytes.")
    return data


# ---- The server ---------------------------------------------------------------------

READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
DELETE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True,
                         open_world_hint=False)


def build_server(api_for: ApiFor, *, local_files: bool) -> MCPServer:
    """The MCP server with every tool; ``api_for(ctx)`` gives the API of the request's caller."""
    mcp = _quiet_server()

    async def upload(ctx: Context, path: str | None, data_base64: str | None,
                     filename: str | None, fields: dict[str, Any]) -> CallToolResult:
        api = api_for(ctx)
        if (path is None) == (data_base64 is None):
            where = "path or data_base64" if local_files else "data_base64"
            return invalid("file", f"Give exactly one of {where}.")
        if path is not None:
            read = _read_local_file(path, authenticated=bool(api.key))
            if isinstance(read, CallToolResult):
                return read
            data, default_name = read
        else:
            decoded = _decode(data_base64 or "")
            if isinstance(decoded, CallToolResult):
                return decoded
            data, default_name = decoded, "image"
        files = {"file": (filename or default_name, data, "application/octet-stream")}
        return answered(await api.call("POST", "/v1/upload", files=files, data=_form(fields)))

    upload_help = (
        "Upload an image (JPEG, PNG, WebP, GIF, SVG, HEIC, AVIF, TIFF, BMP; detected from its "
        "content). Limits: 70 MB with an API key (10 MB for SVG), 20 MB anonymous (anonymous "
        "images are deleted after 30 days). Returns the media: id, url (viewer page), src (CDN "
        "URL), width, height, filesize, tags, namespace. Give the file as ")

    if local_files:
        async def upload_image(
            ctx: Context,
            path: LocalPath | None = None, data_base64: Base64 | None = None,
            filename: FileName | None = None, name: Name | None = None, tags: TagsArg = None,
            namespace: Namespace | None = None, public: bool | None = None,
            external_id: ExternalId | None = None, date: DateValue | None = None,
            ttl: Ttl | None = None, metadata: Metadata | None = None,
        ) -> CallToolResult:
            return await upload(ctx, path, data_base64, filename, _fields(
                name=name, tags=tags, namespace=namespace, public=public, external_id=external_id,
                date=date, ttl=ttl, metadata=metadata))

        mcp.add_tool(upload_image, annotations=WRITE,
                     description=upload_help + "a local path or as base64 (data_base64).")
    else:
        async def upload_image_remote(
            ctx: Context,
            data_base64: Base64, filename: FileName | None = None, name: Name | None = None,
            tags: TagsArg = None,
            namespace: Namespace | None = None, public: bool | None = None,
            external_id: ExternalId | None = None, date: DateValue | None = None,
            ttl: Ttl | None = None, metadata: Metadata | None = None,
        ) -> CallToolResult:
            return await upload(ctx, None, data_base64, filename, _fields(
                name=name, tags=tags, namespace=namespace, public=public, external_id=external_id,
                date=date, ttl=ttl, metadata=metadata))

        mcp.add_tool(upload_image_remote, name="upload_image", annotations=WRITE,
                     description=upload_help + "base64 (data_base64); for a file on the web "
                                               "use import_image.")

    @mcp.tool(annotations=WRITE)
    async def import_image(
        ctx: Context,
        url: Annotated[str, Field(min_length=1, max_length=2048,
                                  description="http(s) URL of the image; the server fetches it.")],
        name: Name | None = None, tags: TagsArg = None,
        namespace: Namespace | None = None, public: bool | None = None,
        external_id: ExternalId | None = None, date: DateValue | None = None,
        ttl: Ttl | None = None, metadata: Metadata | None = None,
    ) -> CallToolResult:
        """Import an image from a URL (same limits, fields and result as upload_image)."""
        body = {"url": url, **_fields(name=name, tags=tags, namespace=namespace, public=public,
                                      external_id=external_id, date=date, ttl=ttl,
                                      metadata=metadata)}
        return answered(await api_for(ctx).call("POST", "/v1/import", json=body))

    @mcp.tool(annotations=READ)
    async def list_media(
        ctx: Context,
        namespace: Namespace | None = None,
        tags: Annotated[Tags | None, Field(description="Only images with these tags. "
                                           + TAGS_HELP)] = None,
        tag_mode: Annotated[Literal["all", "any"], Field(description="all: every tag; any: at "
                                                         "least one.")] = "all",
        search: Annotated[str | None, Field(max_length=100, description="Only images whose "
                                            "name contains this, in any case.")] = None,
        cursor: Annotated[str | None, Field(description="The cursor of the previous page.")] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="Results per page.")] = 50,
    ) -> CallToolResult:
        """List or search the team's images, newest first, one page at a time (needs a key).
        When has_more is true, pass the returned cursor for the next page."""
        params: dict[str, Any] = {"tag_mode": tag_mode, "limit": limit}
        params.update(_fields(namespace=namespace, tags=tags, search=search, cursor=cursor))
        return answered(await api_for(ctx).call("GET", "/v1/media", params=params))

    @mcp.tool(annotations=READ)
    async def get_media(ctx: Context, id: MediaId) -> CallToolResult:
        """One image with its custom metadata (any public image, or any image of your team)."""
        return answered(await api_for(ctx).call("GET", f"/v1/media/{id}"))

    @mcp.tool(annotations=WRITE)
    async def update_media(ctx: Context, id: MediaId, update: MediaUpdate) -> CallToolResult:
        """Change an image's name, tags, namespace, visibility, date, external_id, ttl or
        metadata; only the fields given change (needs a key with write)."""
        body = update.model_dump(exclude_unset=True)
        if not body:
            return invalid("update", "Give at least one field to change.")
        if "tags" in body:
            body["tags"] = _tags(body["tags"])
        return answered(await api_for(ctx).call("PATCH", f"/v1/media/{id}", json=body))

    @mcp.tool(annotations=DELETE)
    async def delete_media(ctx: Context, id: MediaId) -> CallToolResult:
        """Delete an image: the viewer page and every CDN URL stop working."""
        return answered(await api_for(ctx).call("DELETE", f"/v1/media/{id}"))

    @mcp.tool(annotations=WRITE)
    async def batch_update_media(ctx: Context, ids: Ids, update: BatchChange) -> CallToolResult:
        """Apply tags (replace, add or remove), a namespace or a visibility to up to 100 images
        at once; all or nothing. Returns how many of your team's images were updated."""
        body = update.model_dump(exclude_unset=True)
        if "tags" in body:
            body["tags"] = _tags(body["tags"])
        return answered(await api_for(ctx).call("PATCH", "/v1/media/batch",
                                                json={"ids": ids, "update": body}))

    @mcp.tool(annotations=DELETE)
    async def batch_delete_media(
        ctx: Context, ids: Ids | None = None,
        namespace: Annotated[Namespace | None, Field(description="Delete every image of this "
                                                     "namespace.")] = None,
    ) -> CallToolResult:
        """Delete up to 100 images by id, or every image of a namespace (give one of the two).
        Returns how many were deleted."""
        if (ids is None) == (namespace is None):
            return invalid("ids", "Give exactly one of ids or namespace.")
        body: dict[str, Any] = {"ids": ids} if ids is not None else {"namespace": namespace}
        return answered(await api_for(ctx).call("DELETE", "/v1/media/batch", json=body))

    @mcp.tool(annotations=READ)
    async def get_usage(ctx: Context) -> CallToolResult:
        """The plan, uploads used/limit/remaining this month, storage used/limit in bytes,
        when the monthly quota resets (Unix time) and whether the email is verified."""
        return answered(await api_for(ctx).call("GET", "/v1/usage"))

    @mcp.tool(annotations=READ)
    async def list_namespaces(ctx: Context) -> CallToolResult:
        """Each namespace in use with its image count and stored bytes."""
        return answered(await api_for(ctx).call("GET", "/v1/namespaces"))

    @mcp.tool(annotations=READ)
    async def cdn_urls(ctx: Context, id: MediaId) -> CallToolResult:
        """Every CDN URL of an image: for each size (s, m, l: short edge 320, 640, 1080 px,
        never upscaled; full: the original's size) its dimensions and its URL in each format
        (jpeg, png, webp, avif); plus the original file (original) and the viewer page (url)."""
        answer = await api_for(ctx).call("GET", f"/v1/media/{id}")
        if not answer.ok:
            return answered(answer)
        return _result(all_cdn_urls(answer.body))

    return mcp


class ImgproMcpServer(MCPServer):
    """Arguments that fail their JSON schema come back like the API's own ``422``
    (``validation_error`` with ``errors`` per field) instead of the SDK's prose, so an agent
    reads one error shape whatever refused the call."""

    async def call_tool(self, name: str, arguments: dict[str, Any],
                        context: Context | None = None) -> CallToolResult | InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if not isinstance(exc.__cause__, ValidationError):
                raise
            errors: dict[str, list[str]] = {}
            for problem in exc.__cause__.errors():
                field = ".".join(str(part) for part in problem["loc"]) or "arguments"
                errors.setdefault(field, []).append(problem["msg"])
            first = next(iter(errors.items()))
            return _result(error_body("validation_error", f"{first[0]}: {first[1][0]}",
                                      errors=errors), error=True)


def _quiet_server() -> MCPServer:
    """``MCPServer()`` calls ``logging.basicConfig`` with a rich handler when the root logger
    has none; in ``imgpro serve`` that would reformat every log line of the process, so the
    root logger is put back as it was."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        return ImgproMcpServer("imgpro", instructions=INSTRUCTIONS, version="1",
                               log_level="WARNING")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
