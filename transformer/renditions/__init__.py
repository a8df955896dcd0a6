"""The cluster's shared rendition store: renditions in an S3 bucket, the third cache layer.

    S3RenditionStore       lookup (with the lease) / fetch / save (write-behind) / abandon,
                           the cache.SharedLayer a CDN node gives its RenditionCache; and
                           purge_image, which the API's delete paths call
    RenditionStoreConfig   its settings, built from api.settings
    CircuitBreaker         why a dead endpoint costs nothing per miss

Off unless ``IMGPRO_RENDITION_STORE_URL`` is set. ``store`` says why and how; README
("Shared rendition store") says when to turn it on and what it costs.
"""

from __future__ import annotations

from transformer.renditions.breaker import CircuitBreaker
from transformer.renditions.config import RenditionStoreConfig
from transformer.renditions.store import S3RenditionStore

__all__ = ["CircuitBreaker", "RenditionStoreConfig", "S3RenditionStore"]
