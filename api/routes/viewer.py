"""GET /{id}: the viewer page of a public image (the media's ``url``).

The page shows the image through the CDN with a responsive srcset of the s/m/l renditions
(WebP with a JPEG fallback, so HEIC/TIFF originals display in every browser), its name and
dimensions, and Open Graph / Twitter tags so links unfurl. Private, deleted, expired and
unknown ids get the same 404 page.
"""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import Response

from api.context import ApiContext, context_of
from api.db.media import MediaRecord, get_media
from api.errors import NotFound
from api.routes.html_page import html_page, message_page, origin_of
from api.rules.ids import looks_like_media_id
from transformer import SHORT_EDGE, SIZES


def rendition_width(width: int, height: int, short_edge: int) -> int:
    """Width of a rendition whose short edge is at most ``short_edge`` (never upscaled)."""
    short = min(width, height)
    if short <= short_edge:
        return width
    return max(1, round(width * short_edge / short))


def srcset(ctx: ApiContext, record: MediaRecord, fmt: str) -> str:
    base = f"{ctx.settings.effective_cdn_url}/{record.team_hash}/{record.id}.{fmt}"
    seen: dict[int, str] = {}
    for size in SIZES:
        width = rendition_width(record.width, record.height, SHORT_EDGE[size])
        seen.setdefault(width, f"{base}?size={size} {width}w")
    return ", ".join(seen.values())


def not_found_page() -> Response:
    return message_page("Image not found", "This image does not exist, is private, or was deleted.",
                        status=404)


async def viewer(request: Request) -> Response:
    ctx = context_of(request)
    media_id = request.path_params["id"]
    if not looks_like_media_id(media_id):
        raise NotFound("Not found.")  # not an id: the API's JSON 404 for unknown routes
    async with ctx.db.read() as conn:
        record = await get_media(conn, media_id)
    expiry = record.effective_expiry if record else None
    if record is None or not record.public or (expiry is not None and expiry <= ctx.now()):
        return not_found_page()
    return viewer_page(ctx, record)


def viewer_page(ctx: ApiContext, record: MediaRecord) -> Response:
    cdn = f"{ctx.settings.effective_cdn_url}/{record.team_hash}/{record.id}"
    large = rendition_width(record.width, record.height, SHORT_EDGE["l"])
    large_height = round(record.height * large / record.width)
    og_image = f"{cdn}.jpeg?size=l"
    title = escape(record.name)
    head = "".join(
        f'<meta property="{escape(p)}" content="{escape(str(v))}">'
        for p, v in (
            ("og:type", "website"), ("og:title", record.name), ("og:url", ctx.media_url(record.id)),
            ("og:image", og_image), ("og:image:type", "image/jpeg"),
            ("og:image:width", large), ("og:image:height", large_height),
        )
    ) + "".join(
        f'<meta name="{n}" content="{escape(str(v))}">'
        for n, v in (("twitter:card", "summary_large_image"), ("twitter:title", record.name),
                     ("twitter:image", og_image))
    ) + f'<link rel="canonical" href="{escape(ctx.media_url(record.id))}">'
    sizes = "(max-width: 960px) 100vw, 960px"
    body = (
        f"<h1>{title}</h1><picture>"
        f'<source type="image/webp" srcset="{escape(srcset(ctx, record, "webp"))}" sizes="{sizes}">'
        f'<img src="{escape(cdn)}.jpeg?size=m" srcset="{escape(srcset(ctx, record, "jpeg"))}" '
        f'sizes="{sizes}" width="{large}" height="{large_height}" alt="{title}"></picture>'
        f'<p class="meta">{record.width} &times; {record.height} px &middot; '
        f'{record.extension.upper()} &middot; <a href="{escape(cdn)}.{escape(record.extension)}">'
        "original</a></p>"
    )
    cdn_origin = origin_of(ctx.settings.effective_cdn_url)
    return html_page(record.name, body, head=head, img_sources=f"'self' {cdn_origin}".rstrip())
