"""Every CDN URL of an image: each size (s, m, l and the full size) in each output format.

A media's ``src`` is its original at ``{cdn}/{team_hash}/{id}.{extension}``; the CDN converts by
extension and resizes by ``?size=``, so the other URLs follow from ``src`` alone. The pages
build the same URLs in JavaScript (api/web/common.js); the MCP tool ``cdn_urls`` uses this.
"""

from __future__ import annotations

from typing import Any

from transformer import FORMATS, SHORT_EDGE, SIZES, target_dimensions

FULL = "full"
"""The key of the URLs without ``?size=``: the original's dimensions, converted."""


def rendition_url(src: str, fmt: str, size: str | None = None) -> str:
    """``src`` with the extension ``fmt`` and, for a named size, ``?size=``."""
    base = src.rsplit(".", 1)[0] if "." in src.rsplit("/", 1)[-1] else src
    return f"{base}.{fmt}" + (f"?size={size}" if size else "")


def cdn_urls(media: dict[str, Any]) -> dict[str, Any]:
    """For a media object of the API: its original and, per size, the dimensions and the URL
    of each format. Sizes never upscale, so a small image's ``l`` has its own dimensions."""
    width, height = int(media["width"]), int(media["height"])
    sizes: dict[str, Any] = {}
    for size in (*SIZES, None):
        w, h = target_dimensions(width, height, size) if width and height else (width, height)
        sizes[size or FULL] = {
            "short_edge": SHORT_EDGE[size] if size else None,
            "width": w,
            "height": h,
            "urls": {fmt: rendition_url(media["src"], fmt, size) for fmt in FORMATS},
        }
    return {"id": media["id"], "name": media["name"], "url": media["url"],
            "original": media["src"], "sizes": sizes}
