"""The files people and tools fetch from the API role: the upload page ``/``, the media library
``/library``, the interactive API docs ``/api`` and ``/openapi.yaml``.

They are plain files kept in the repository (``api/web/`` and ``api/openapi.yaml``), read once
when the app is built and answered from memory with a content-hash ETag, so a browser
revalidates cheaply (``304``) and a deploy shows up on the next load. Paths are single
segments on purpose: two-segment paths such as ``/static/upload.js`` look like CDN URLs
(``/{team_hash}/{uid}.{ext}``) and would be routed to the transform origin.

The docs page renders the OpenAPI file with Swagger UI, whose two files are vendored byte for
byte from the npm package ``swagger-ui-dist`` into ``api/web/swagger-ui/`` (see the README
there): served by us like the rest, so the page needs nothing from another host.
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


PAGES = {"/": "index.html", "/library": "library.html", "/api": "api.html"}
"""The HTML pages: each answered with the Content-Security-Policy above."""

ASSETS = {
    "/common.js": "common.js",
    "/upload.js": "upload.js",
    "/upload.css": "upload.css",
    "/library.js": "library.js",
    "/library.css": "library.css",
    "/api.js": "api.js",
    "/api.css": "api.css",
    "/swagger-ui-bundle.js": "swagger-ui/swagger-ui-bundle.js",
    "/swagger-ui.css": "swagger-ui/swagger-ui.css",
}
"""Scripts and styles of the pages (URL path -> file under ``api/web/``)."""

MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8"}


def web_files(settings: Settings) -> dict[str, WebFile]:
    """URL path -> file, read from disk now (a missing file stops start-up, not a request)."""
    common = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    page = {**common, "Content-Security-Policy": page_security_policy(settings),
            "Referrer-Policy": "no-referrer"}

    def read(name: str, headers: dict[str, str]) -> WebFile:
        path = WEB_DIR / name
        return WebFile(path.read_bytes(), MEDIA_TYPES[path.suffix], headers)

    files = {url: read(name, page) for url, name in PAGES.items()}
    files.update({url: read(name, common) for url, name in ASSETS.items()})
    files["/favicon.ico"] = WebFile((WEB_DIR / "favicon.ico").read_bytes(), "image/x-icon",
                                    {**common, "Cache-Control": "public, max-age=86400"})
    files["/openapi.yaml"] = WebFile(OPENAPI_PATH.read_bytes(), "application/yaml; charset=utf-8",
                                     {**common, "Access-Control-Allow-Origin": "*"})
    return files


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
