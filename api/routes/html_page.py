"""The few HTML pages the API serves (verification, upgrade, viewer) share one small shell.

No external assets: the style is inline so a page works from any host, CDN or not. Every page
carries a Content-Security-Policy that allows only that style (by its hash), images from the
origins the caller names, and forms posting back to the page itself; ``frame-ancestors 'none'``
(and ``X-Frame-Options`` for old browsers) keeps other sites from framing a page under a
decoy, which matters most for the confirmation buttons.
"""

from __future__ import annotations

import base64
import hashlib
from html import escape
from urllib.parse import urlsplit

from starlette.responses import HTMLResponse

_STYLE = """
body{margin:0;font:16px/1.5 system-ui,sans-serif;background:#f6f6f4;color:#222}
main{max-width:960px;margin:0 auto;padding:2rem 1rem}
h1{font-size:1.4rem;margin:0 0 1rem}
img{max-width:100%;height:auto;display:block;margin:0 auto;background:#fff}
table{border-collapse:collapse}
td,th{padding:.3rem .8rem;border-bottom:1px solid #ddd;text-align:left}
code{background:#eee;padding:.1rem .3rem;border-radius:3px}
button{font:inherit;padding:.5rem 1.2rem;border:0;border-radius:4px;background:#1a5fb4;color:#fff}
.meta{color:#666;font-size:.9rem;text-align:center;margin-top:.8rem}
"""
_STYLE_HASH = "'sha256-" + base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode() + "'"


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, for a CSP source list ("" if it has none)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def content_security_policy(img_sources: str = "") -> str:
    """The policy of every page: ``img_sources`` (origins, space-separated) may serve images."""
    images = f"img-src {img_sources}; " if img_sources else ""
    return (f"default-src 'none'; {images}style-src {_STYLE_HASH}; form-action 'self'; "
            "base-uri 'none'; frame-ancestors 'none'")


def html_page(title: str, body: str, *, status: int = 200, head: str = "",
              img_sources: str = "") -> HTMLResponse:
    """``body`` and ``head`` are trusted HTML built by the caller with escaped values."""
    document = (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>{escape(title)}</title>{head}<style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )
    return HTMLResponse(document, status_code=status, headers={
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": content_security_policy(img_sources),
        "X-Frame-Options": "DENY",
        # Links carry tokens in their query: never hand them to another site. Same-origin
        # (not no-referrer) so that a confirmation form's POST still carries its Origin.
        "Referrer-Policy": "same-origin",
    })


def message_page(title: str, message: str, *, status: int = 200) -> HTMLResponse:
    return html_page(title, f"<h1>{escape(title)}</h1><p>{escape(message)}</p>", status=status)
