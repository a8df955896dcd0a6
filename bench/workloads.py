"""What the side-by-side benchmark asks each participant for, and the URL each one needs for it.

Every participant gets the same work: the same corpus photos, the same short-edge target, the
same output format at quality 80, in the same rotation. Only the URL spelling differs (ours:
``/{team}/{uid}.webp?size=m``; ipx: ``/h_640,q_80,f_webp/{file}``; thumbor:
``/unsafe/0x640/filters:...``). The pure geometry lives here so a test can check that the peers'
modifiers really ask for the same pixels as our ``size`` does.

Each photo is served under several names (``c00-...``, ``c01-...``): with 32 connections and 12
photos, concurrent requests would otherwise often ask for the very same rendition, and request
coalescing would let our server answer several of them with one transform, which is not a cold
miss. With enough copies every in-flight request is a distinct key. Our server also gets a new
team hash on every pass over the names (``ours_teams``): when it sheds load with fast 503s, wrk
comes round to a name within a second or two, while a slow transform of that same name may
still be running and would answer both.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from transformer import SHORT_EDGE, Format, Size

EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp"}
"""Corpus format -> file extension of the served copy (ipx and thumbor pick the decoder by it)."""

QUALITY = 80
TEAM = "bench"
TEAMS = 1000
"""Team hashes under which our server sees the same originals (symlinks to one folder)."""

Kind = Literal["cold", "hit"]


@dataclass(frozen=True, slots=True)
class Workload:
    """One row group of the comparison: a rendition asked for over and over."""

    name: str
    size: Size
    fmt: Format
    kind: Kind

    @property
    def target(self) -> int:
        return SHORT_EDGE[self.size]


WORKLOADS: tuple[Workload, ...] = (
    Workload("m WebP", "m", "webp", "cold"),
    Workload("m JPEG", "m", "jpeg", "cold"),
    Workload("l AVIF", "l", "avif", "cold"),
    Workload("s WebP hit", "s", "webp", "hit"),
)


@dataclass(frozen=True, slots=True)
class Photo:
    """A corpus file as displayed (the corpus has no EXIF rotation, so header size = shown size)."""

    path: Path
    format: str
    width: int
    height: int

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def landscape(self) -> bool:
        return self.width >= self.height


def load_photos(corpus: Path) -> list[Photo]:
    """The corpus from its MANIFEST.tsv, in manifest order."""
    with (corpus / "MANIFEST.tsv").open() as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [Photo(corpus / r["file"], r["format"], int(r["width"]), int(r["height"])) for r in rows]


@dataclass(frozen=True, slots=True)
class Served:
    """One served name of a photo: copy ``copy`` of ``photo``."""

    photo: Photo
    copy: int

    @property
    def uid(self) -> str:
        """Our media id (store key) and, with an extension, the peers' file name."""
        return f"c{self.copy:02d}-{self.photo.stem}"

    @property
    def filename(self) -> str:
        return f"{self.uid}.{EXTENSIONS[self.photo.format]}"


def rotation(photos: list[Photo], copies: int) -> list[Served]:
    """All served names, interleaved so that any window of requests mixes every photo."""
    return [Served(p, c) for c in range(copies) for p in photos]


def output_size(photo: Photo, target: int) -> tuple[int, int]:
    """Short edge = target, aspect kept, never enlarged (what every participant must produce)."""
    short = min(photo.width, photo.height)
    if short <= target:
        return photo.width, photo.height
    scale = target / short
    if photo.landscape:
        return round(photo.width * scale), target
    return target, round(photo.height * scale)


def ours_path(served: Served, workload: Workload) -> str:
    return f"/{TEAM}/{served.uid}.{workload.fmt}?size={workload.size}"


def ipx_path(served: Served, workload: Workload) -> str:
    """ipx: the short edge via ``h_`` (landscape) or ``w_``; ipx never enlarges by default."""
    edge = "h" if served.photo.landscape else "w"
    return f"/{edge}_{workload.target},q_{QUALITY},f_{workload.fmt}/{served.filename}"


def thumbor_path(served: Served, workload: Workload) -> str:
    """thumbor: ``0`` keeps the other edge proportional; ``no_upscale()`` as the others do."""
    t = workload.target
    box = f"0x{t}" if served.photo.landscape else f"{t}x0"
    filters = f"filters:quality({QUALITY}):format({workload.fmt}):no_upscale()"
    return f"/unsafe/{box}/{filters}/{served.filename}"


def nginx_path(served: Served, workload: Workload) -> str:
    """nginx serves the pre-rendered bytes under a plain file name."""
    return f"/{served.uid}-{workload.size}.{workload.fmt}"


def ours_teams() -> list[str]:
    """``TEAM`` first (the name the single-pass fetches use), then ``bench001`` ..."""
    return [TEAM] + [f"{TEAM}{i:03d}" for i in range(1, TEAMS)]


def load_rotation(
    who: str, served: list[Served], workload: Workload
) -> tuple[list[str], list[str]]:
    """What wrk cycles over for ``who``: paths, and the prefix put before them on each pass."""
    if who == "ours" and workload.kind == "cold":
        paths = [ours_path(s, workload).removeprefix(f"/{TEAM}") for s in served]
        return paths, [f"/{team}" for team in ours_teams()]
    return [PATH_BUILDERS[who](s, workload) for s in served], [""]


PATH_BUILDERS = {
    "ours": ours_path,
    "ipx": ipx_path,
    "thumbor": thumbor_path,
    "nginx": nginx_path,
}
