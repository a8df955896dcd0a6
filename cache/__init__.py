"""Rendition caches: byte-bounded memory LRU, size-bounded disk cache, request coalescing.

Imports nothing else of imgpro; the transform origin builds a ``RenditionCache`` from a
``MemoryCache``, a ``DiskCache`` and optionally a ``SharedLayer`` (the cluster's rendition
store, implemented in ``transformer.renditions``) and asks it for
``get_or_produce(key, producer)``.
"""

from cache.coalesce import SingleFlight
from cache.disk import DiskCache
from cache.entry import Entry, digest_of
from cache.layered import Layer, RenditionCache
from cache.memory import MemoryCache
from cache.shared import SharedLayer

__all__ = [
    "DiskCache",
    "Entry",
    "Layer",
    "MemoryCache",
    "RenditionCache",
    "SharedLayer",
    "SingleFlight",
    "digest_of",
]
