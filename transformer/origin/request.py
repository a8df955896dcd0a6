"""What a CDN URL asks for: ``/{team_hash}/{uid}.{ext}?size=s|m|l`` parsed into a request.

Pure functions: no I/O, so the 4xx answers are decided before anything is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from transformer import EXTENSION_ALIASES, FORMATS, SIZES, Size
from transformer.origin.errors import ImageNotFound, InvalidSize, UnsupportedExtension

CDN_PATH = re.compile(r"^/([A-Za-z0-9_-]{1,64})/([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9]{1,5})$")
"""What a CDN URL looks like; the composed app routes matching paths here."""
_SIMPLE_QUERY = re.compile(rb"^(?:size=([A-Za-z]{0,8}))?$")

ORIGINAL_EXTENSIONS: dict[str, str] = {
    **EXTENSION_ALIASES,
    "gif": "gif",
    "svg": "svg",
    "heic": "heic",
    "heif": "heic",
    "tif": "tiff",
    "tiff": "tiff",
    "bmp": "bmp",
}
"""Extensions a URL may carry: the four output formats, plus originals served unchanged."""

RESIZED_STAND_IN = "webp"
"""What ``?size=`` on an original-only extension (gif, svg, tiff, bmp, heic) redirects to: WebP
keeps a GIF's animation and any transparency, and every current browser shows it. A redirect,
not a WebP body under a .gif name, so a URL's extension always names the bytes it serves."""


@dataclass(frozen=True, slots=True)
class CdnRequest:
    team_hash: str
    uid: str
    kind: str  # output format, or an original-only type such as gif
    size: Size | None

    @property
    def group(self) -> str:
        """The image: every rendition of it shares this prefix (purge, revalidation)."""
        return f"{self.team_hash}/{self.uid}"

    def key(self, version: str) -> str:
        """The rendition's cache key: image, size, format and encoder-settings version."""
        return f"{self.group}/{self.size or 'o'}.{self.kind}.{version}"

    @classmethod
    def from_key(cls, key: str) -> tuple[CdnRequest, str] | None:
        """The request and encoder-settings version a cache key was made from (None if the
        key is not one of ``key``'s), so a refine job can be queued as a key alone."""
        group, _, variant = key.rpartition("/")
        team_hash, _, uid = group.partition("/")
        parts = variant.split(".")
        if len(parts) != 3 or not CDN_PATH.match(f"/{team_hash}/{uid}.x"):
            return None
        size, kind, version = parts
        if kind not in FORMATS or (size != "o" and size not in SIZES):
            return None
        return cls(team_hash, uid, kind, None if size == "o" else size), version  # type: ignore[arg-type]


def parse_request(path: str, query_string: bytes) -> CdnRequest:
    """Validate a CDN URL; raises a ``CdnError`` with the status the client should see."""
    match = CDN_PATH.match(path)
    if match is None:
        raise ImageNotFound()
    team_hash, uid, ext = match.groups()
    kind = ORIGINAL_EXTENSIONS.get(ext.lower())
    if kind is None:
        raise UnsupportedExtension(ext)
    simple = _SIMPLE_QUERY.match(query_string)  # "", "size=m": skip the general parser
    if simple is not None:
        size = simple.group(1).decode() if simple.group(1) else None
    else:
        sizes = {value or None for name, value in
                 parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
                 if name == "size"}
        if len(sizes) > 1:  # which one was meant? (a CDN may also keep only one of them)
            raise InvalidSize("Give the size parameter once.",
                              "given more than once with different values")
        size = sizes.pop() if sizes else None
    if size is not None and size not in SIZES:
        raise InvalidSize("The size parameter must be s, m or l.", "must be one of s, m, l")
    return CdnRequest(team_hash, uid, kind, size)


def unescaped_location(path: str, raw_path: bytes, query_string: bytes) -> str:
    """Where a CDN URL written with percent-escapes should be asked for instead.

    uvicorn decodes the path before we see it, so ``/t/%61bc.jpg``, ``/t%2Fabc.jpg`` and
    ``/t/abc.jpg`` all arrived as ``/t/abc.jpg``: one image, as many edge cache keys (and
    renditions stored at the edge) as spellings. Our URLs never need an escape (every
    character of a CDN path is unreserved), so:

    - escaped unreserved characters mean the same URL (RFC 3986, 6.2.2.2): a permanent
      redirect to the plain spelling, which the edge caches as a few bytes;
    - an escaped ``/`` (``%2F``) is not a path separator, so the URL names no image: 404.

    The redirect keeps the size and nothing else of the query, so its Location is built only
    from characters the patterns allowed.
    """
    if raw_path.count(b"/") != path.count("/"):
        raise ImageNotFound()
    request = parse_request(path, query_string)  # the same 4xx as the plain spelling
    return f"{path}?size={request.size}" if request.size else path


def resized_stand_in(request: CdnRequest) -> str | None:
    """The path to redirect to when a size is asked of a format we only serve unchanged."""
    if request.size is None or request.kind in FORMATS:
        return None
    return f"/{request.team_hash}/{request.uid}.{RESIZED_STAND_IN}?size={request.size}"
