"""Was a form POST sent from one of our own pages? The ``Origin`` header, when there is one.

The confirmation forms carry a signed token, which alone makes a forged cross-site POST
useless (the forger would need the token from the victim's mailbox). The Origin check is the
second lock the browser offers for free: a browser names the page's origin on every POST,
so one that names another site (or ``null``, a sandboxed or opaque page) is refused. No
Origin at all (curl, old clients, privacy tools that strip it) is left to the token.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def origin_allowed(origin: str | None, host: str | None, public_url: str) -> bool:
    """True without an Origin, or when it is the public URL's origin or names this request's
    own Host (the scheme is not compared there: a TLS proxy in front makes it https)."""
    if origin is None:
        return True
    parts = urlsplit(origin.strip())
    if not parts.scheme or not parts.netloc:
        return False  # "null" and anything else that is not an origin
    public = urlsplit(public_url)
    if (parts.scheme, parts.netloc.lower()) == (public.scheme, public.netloc.lower()):
        return True
    return host is not None and parts.netloc.lower() == host.strip().lower()
