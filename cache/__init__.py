"""Rendition caches: byte-bounded memory LRU, size-bounded disk cache, request coalescing."""
