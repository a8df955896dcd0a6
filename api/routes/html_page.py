"""The few HTML pages the API serves (verification, upgrade, viewer) share one small shell.

No external assets: the style is inline so a page works from any host, CDN or not.
"""

from __future__ import annotations

from html import escape

from starlette.responses import HTMLResponse

_STYLE = """
body{margin:0;font:16px/1.5 system-ui,sans-serif;background:#f6f6f4;color:#222}
main{max-width:960px;margin:0 auto;padding:2rem 1rem}
h1{font-size:1.4rem;margin:0 0 1rem}
img{max-width:100%;height:auto;display:block;margin:0 auto;background:#fff}
table{border-collapse:collapse}
td,th{padding:.3rem .8rem;border-bottom:1px solid #ddd;text-align:left}
code{background:#eee;padding:.1rem .3rem;border-radius:3px}
.meta{color:#666;font-size:.9rem;text-align:center;margin-top:.8rem}
"""


def html_page(title: str, body: str, *, status: int = 200, head: str = "") -> HTMLResponse:
    """``body`` and ``head`` are trusted HTML built by the caller with escaped values."""
    document = (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>{escape(title)}</title>{head}<style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )
    return HTMLResponse(document, status_code=status,
                        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


def message_page(title: str, message: str, *, status: int = 200) -> HTMLResponse:
    return html_page(title, f"<h1>{escape(title)}</h1><p>{escape(message)}</p>", status=status)
