"""Resident memory of a server's whole process tree, sampled in the background during a run.

Servers here are trees (uvicorn's supervisor and workers, thumbor's forks, nginx's master and
workers), so one PID's RSS would understate them. The sum of RSS over the tree counts pages
shared between forks more than once; it is the figure ``ps``/``top`` users add up, the same
rule for every participant, and an upper bound of the real footprint.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psutil


def tree_processes(pid: int) -> list[psutil.Process]:
    """``pid`` and all its descendants now (empty if it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss(pid: int) -> int:
    """Bytes resident in ``pid`` and all its descendants now (0 if it is gone)."""
    total = 0
    for proc in tree_processes(pid):
        try:
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


@dataclass
class RssSampler:
    """Samples ``tree_rss(pid)`` every ``interval`` seconds between ``start`` and ``stop``.

    Use as a context manager around the load: ``with RssSampler(pid) as rss: ...`` then read
    ``rss.peak`` or ``rss.samples`` (``(seconds since start, bytes)`` pairs).
    """

    pid: int
    interval: float = 0.25
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        start = time.monotonic()
        while True:
            self.samples.append((time.monotonic() - start, tree_rss(self.pid)))
            if self._stop.wait(self.interval):
                return

    def start(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> RssSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def peak(self) -> int:
        return max((rss for _, rss in self.samples), default=0)
