"""The files people and tools fetch from the API role: the upload page ``/``, ``/openapi.yaml``.

They are plain files kept in the repository (``api/web/`` and ``api/openapi.yaml``), read once
when the app is built and answered from memory with a content-hash ETag, so a browser
revalidates cheaply (``304``) and a deploy shows up on the next load. Paths are single
segments on purpose: two-segment paths such as ``/static/upload.js`` look like CDN URLs
(``/{team_hash}/{uid}.{ext}``) and would be routed to the transform origin.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.routes.html_page import origin_of
from api.settings import Settings

HERE = Path(__file__).resolve().parents[1]  # api/: the files live beside the packages
WEB_DIR = HERE / "web"
OPENAPI_PATH = HERE / "openapi.yaml"


@dataclass(frozen=True, slots=True)
class WebFile:
    """One served file: its bytes, media type and the headers every answer carries."""

    body: bytes
    media_type: str
    headers: dict[str, str]

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"'


def page_security_policy(settings: Settings) -> str:
    """The upload page loads only its own files; images may also come from the CDN base."""
    cdn_origin = origin_of(settings.effective_cdn_url)
    return ("default-src 'self'; "
            f"img-src 'self' data: blob: {cdn_origin}".rstrip() + "; "
            "script-src 'self'; style-src 'self'; connect-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def is_not_modified(if_none_match: str | None, etag: str) -> bool:
    """True when the client's ``If-None-Match`` names our current ETag (or ``*``)."""
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


def web_files(settings: Settings) -> dict[str, WebFile]:
    """URL path -> file, read from disk now (a missing file stops start-up, not a request)."""
    common = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    page = {**common, "Content-Security-Policy": page_security_policy(settings),
            "Referrer-Policy": "no-referrer"}
    return {
        "/": WebFile((WEB_DIR / "index.html").read_bytes(), "text/html; charset=utf-8", page),
        "/upload.js": WebFile((WEB_DIR / "upload.js").read_bytes(),
                              "text/javascript; charset=utf-8", common),
        "/upload.css": WebFile((WEB_DIR / "upload.css").read_bytes(),
                               "text/css; charset=utf-8", common),
        "/favicon.ico": WebFile((WEB_DIR / "favicon.ico").read_bytes(), "image/x-icon",
                                {**common, "Cache-Control": "public, max-age=86400"}),
        "/openapi.yaml": WebFile(OPENAPI_PATH.read_bytes(), "application/yaml; charset=utf-8",
                                 {**common, "Access-Control-Allow-Origin": "*"}),
    }


def web_routes(settings: Settings) -> list[Route]:
    """Routes for api/app.py; mount them before the viewer's catch-all ``/{id}``."""

    def endpoint_for(file: WebFile) -> Callable[[Request], Awaitable[Response]]:
        etag = file.etag

        async def serve(request: Request) -> Response:
            headers = {**file.headers, "ETag": etag}
            if is_not_modified(request.headers.get("if-none-match"), etag):
                return Response(status_code=304, headers=headers)
            return Response(file.body, media_type=file.media_type, headers=headers)

        return serve

    return [Route(path, endpoint_for(file), methods=["GET", "HEAD"])
            for path, file in web_files(settings).items()]
