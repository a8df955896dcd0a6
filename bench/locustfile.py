"""Locust load test of the CDN origin: cold misses and cache hits, host from ``--host``.

    locust -f bench/locustfile.py --headless -u 16 -r 4 -t 60s \
        --host http://127.0.0.1:8080 ColdMissUser
    locust -f bench/locustfile.py --headless -u 32 -r 8 -t 60s \
        --host http://127.0.0.1:8080 HitUser

Locust complements ``bench/compare.py`` (wrk, one fixed run, side by side with the peers): it is
for exploring our own server interactively (web UI, ramp-up, mixed user classes, failures by
status). The originals must be stored first, under the team hash ``--team`` (default ``bench``)
and the media ids ``--uids`` (default: the corpus file stems, as README "## Benchmarks" stores
them with ``python -m api put``).

- ``ColdMissUser`` asks for a random size (s/m/l) and format (jpeg/png/webp/avif) of a random
  media id. Run the server with ``IMGPRO_MEMORY_CACHE_MB=0 IMGPRO_DISK_CACHE_MB=0`` so every
  request is a transform (with caches on, the 12 x 3 x 4 renditions of the corpus are hits
  after the first pass).
- ``HitUser`` repeats a small hot set (the s WebP and m JPEG of three media ids): after the
  first request each is a memory-cache hit.

Every request is grouped by shape (``/{team}/[uid].webp?size=m``) so the statistics show one
row per size/format, and any status >= 400 (e.g. 503 backpressure) counts as a failure.
"""

from __future__ import annotations

import random
from typing import Any

from locust import FastHttpUser, constant, events, task

from bench.corpus import corpus_dir

SIZES = ("s", "m", "l")
FORMATS = ("jpeg", "png", "webp", "avif")
HOT_SET = (("s", "webp"), ("m", "jpeg"))


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    parser.add_argument("--team", default="bench", help="team hash of the stored originals")
    parser.add_argument(
        "--uids", default="", help="comma-separated media ids (default: the corpus file stems)"
    )


def media_ids(option: str) -> list[str]:
    """The ids to request: the option's list, else the stems of the corpus files."""
    ids = [uid.strip() for uid in option.split(",") if uid.strip()]
    if not ids:
        corpus = corpus_dir()  # explains itself when there is none
        ids = sorted(p.stem for p in corpus.iterdir() if p.suffix in (".jpg", ".png", ".webp"))
    return ids


class _CdnUser(FastHttpUser):
    abstract = True
    wait_time = constant(0)
    """Closed loop, no think time: a CDN in front sends misses as fast as its clients ask."""

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.team: str = options.team if options else "bench"
        self.uids = media_ids(options.uids if options else "")

    def fetch(self, uid: str, size: str, fmt: str) -> None:
        self.client.get(
            f"/{self.team}/{uid}.{fmt}?size={size}", name=f"/{self.team}/[uid].{fmt}?size={size}"
        )


class ColdMissUser(_CdnUser):
    """Random size, format and media id: a transform per request when caches are off."""

    @task
    def random_rendition(self) -> None:
        self.fetch(random.choice(self.uids), random.choice(SIZES), random.choice(FORMATS))


class HitUser(_CdnUser):
    """A small hot set asked for over and over: the memory-cache path."""

    @task
    def hot_rendition(self) -> None:
        size, fmt = random.choice(HOT_SET)
        self.fetch(random.choice(self.uids[:3]), size, fmt)
