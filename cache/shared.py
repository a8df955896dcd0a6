"""The third layer's contract: a rendition store that several nodes share.

``RenditionCache`` asks it after memory and disk, before producing, and hands it what it
produced; the implementation (an S3 bucket, ``transformer.renditions``) lives outside this
package, which imports nothing of ours. Every method degrades instead of raising: a shared
store that is down or slow makes a node behave as if it had none.
"""

from __future__ import annotations

from typing import Protocol

from cache.entry import Entry


class SharedLayer(Protocol):
    async def lookup(self, key: str) -> Entry | None:
        """What another node stored under ``key``, or None: produce it here.

        May wait a bounded time while another node produces the same key (a lease), so that
        a cluster transforms a rendition once; returns None when that wait ends without it.
        """

    async def fetch(self, key: str) -> Entry | None:
        """The stored entry, without taking a lease or waiting (used to pick up a final
        rendition another node refined)."""

    def save(self, key: str, entry: Entry) -> None:
        """Store ``entry`` in the background (write-behind): never blocks, never raises."""

    def abandon(self, key: str) -> None:
        """This node took a lease for ``key`` and will not produce it: release the lease so
        that waiting nodes stop waiting."""
