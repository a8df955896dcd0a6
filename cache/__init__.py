"""Rendition caches: byte-bounded memory LRU, size-bounded disk cache, request coalescing.

Imports nothing else of imgpro; the transform origin builds a ``RenditionCache`` from a
``MemoryCache`` and a ``DiskCache`` and asks it for ``get_or_produce(key, producer)``.
"""

from cache.coalesce import SingleFlight
from cache.disk import DiskCache
from cache.entry import Entry, digest_of
from cache.layered import Layer, RenditionCache
from cache.memory import MemoryCache

__all__ = [
    "DiskCache",
    "Entry",
    "Layer",
    "MemoryCache",
    "RenditionCache",
    "SingleFlight",
    "digest_of",
]
