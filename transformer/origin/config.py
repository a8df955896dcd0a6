"""The origin's limits, as plain values: the host (``api.serving.app``) builds them once from
its settings and passes them in. No defaults here, so each default is defined once, in
``api.settings`` (or, for the pixel limit, by the library's ``DEFAULT_MAX_PIXELS``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OriginConfig:
    threads: int
    """Transform threads of this process."""
    queue_limit: int
    """Transforms allowed to wait for a thread; beyond it the origin answers 503."""
    max_pixels: int
    """Declared pixels above which an original is refused before decoding (bombs)."""
    transform_timeout: float
    """Seconds after which a transform is abandoned (503 + Retry-After)."""
    revalidate_seconds: float
    """How long cached renditions of an image are served before its original is re-checked."""
    refine: bool
    """Answer misses of JPEG/WebP/AVIF with a provisional fast encode and refine it later; off, the
    fast encode is served as final."""
    provisional_max_age: int
    """``Cache-Control: max-age`` of a provisional rendition, in seconds."""
    refine_queue: int
    """Provisional renditions that may wait for the refine lane; beyond it the oldest go."""
    shared_refine_grace: float
    """Seconds a provisional rendition read from the shared rendition store is left to the
    node that made it to refine (this node then picks up the final from the store); after
    that, or at 0, this node refines it itself."""
